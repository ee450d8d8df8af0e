"""What happens to a message its consumer cannot handle: retry later, or dead-letter.

Rules (docs/messaging.md):

- A body that does not parse or validate is *poison*: it goes to ``<ns>.dead-letter`` at
  once, reason ``poison`` (retrying cannot fix it).
- A handler error is retried through the delay chain, back to the same consumer's queue
  only, after 1 s, 5 s, 30 s, 2 min. Our own header ``x-attempts`` counts the failed
  attempts (RabbitMQ 4.x no longer interprets ``x-death`` on re-published messages, and a
  broker-side delivery count would also count harmless redeliveries). The 5th failure
  dead-letters it, reason ``exhausted``, with the exception.
- An event the database contradicts (a ``TokenRedeemed`` for a token it does not show
  redeemed by that merchant) is *refused*: dead-lettered at once, reason ``refused``, the
  handler's explanation as the exception. Retrying cannot make it true.
- A database outage is not a handler error: the consumer pauses (``workers/consumer.py``),
  no attempt is counted.

Every dead letter records where a replay must send it (``x-original-exchange`` and
``x-original-routing-key``): an event goes back to ``<ns>.events`` with its type as routing
key (the normal path: every consumer of that type sees it again, idempotently); a timer
command (the expire consumer's ``TokenExpired``, never published on the events exchange)
goes to ``<ns>.delayed`` with the zero-delay key of its consumer, so it reaches that
consumer's queue at once.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.messaging.delays import delay_target
from shared.messaging.names import (
    H_ATTEMPTS,
    H_DEAD_LETTERED_AT,
    H_EXCEPTION,
    H_ORIGINAL_EXCHANGE,
    H_ORIGINAL_QUEUE,
    H_ORIGINAL_ROUTING_KEY,
    H_REASON,
    H_STACK,
)
from shared.messaging.publisher import Outgoing
from shared.messaging.topology import CONSUMERS, Topology, delay_routing_key

RETRY_DELAYS_SECONDS: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
MAX_ATTEMPTS = 5
POISON = "poison"
EXHAUSTED = "exhausted"
REFUSED = "refused"


class Refused(Exception):
    """Raised by a role for an event the database contradicts: dead-lettered at once."""

# Headers the broker adds each time a message dead-letters (our delay levels do so on
# every hop); dropped when we re-publish, or they would grow with every retry.
_BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")


def attempts_of(headers: Mapping[str, Any]) -> int:
    try:
        return int(headers.get(H_ATTEMPTS, 0))
    except (TypeError, ValueError):
        return 0


def clean_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headers.items() if not k.startswith(_BROKER_DEATH_HEADERS)}


def original_route(
    topo: Topology, consumer: str, exchange: str, routing_key: str,
    headers: Mapping[str, Any], event_type: str | None,
) -> tuple[str, str]:
    """Where a replay of this delivery must go (see the module docstring)."""
    if H_ORIGINAL_EXCHANGE in headers and H_ORIGINAL_ROUTING_KEY in headers:
        return str(headers[H_ORIGINAL_EXCHANGE]), str(headers[H_ORIGINAL_ROUTING_KEY])
    events = topo.names.events_exchange
    if exchange == events:
        return exchange, routing_key
    keys = CONSUMERS.get(consumer, ())
    if event_type is not None and ("#" in keys or event_type in keys):
        return events, event_type
    return topo.delayed_exchange, delay_routing_key(0, consumer)


def describe(exc: BaseException) -> tuple[str, str]:
    """(``Type: message``, trimmed traceback) for the headers."""
    text = f"{type(exc).__name__}: {exc}"[:1000]
    stack = "".join(traceback.format_exception(exc))[-4000:]
    return text, stack


def retry_message(
    topo: Topology, consumer: str, *, body: bytes, message_id: str, type_: str | None,
    headers: Mapping[str, Any], route: tuple[str, str], attempts: int, delay_s: float,
    exc: BaseException,
) -> Outgoing:
    """The same message, back to ``consumer``'s queue after ``delay_s``, attempts counted."""
    text, _ = describe(exc)
    exchange, key = delay_target(topo, delay_s * 1000, consumer)
    return Outgoing(
        exchange=exchange,
        routing_key=key,
        body=body,
        message_id=message_id,
        type=type_,
        headers={
            **clean_headers(headers),
            H_ATTEMPTS: attempts,
            H_EXCEPTION: text,
            H_ORIGINAL_EXCHANGE: route[0],
            H_ORIGINAL_ROUTING_KEY: route[1],
        },
    )


def dead_letter_message(
    topo: Topology, consumer: str, *, body: bytes, message_id: str | None, type_: str | None,
    headers: Mapping[str, Any], route: tuple[str, str], attempts: int, reason: str,
    exc: BaseException,
) -> Outgoing:
    """The message for the parking queue, with everything ops need to decide and replay.

    A message that came without an id gets one, so ``dlq list`` can name every dead letter.
    """
    text, stack = describe(exc)
    return Outgoing(
        exchange=topo.names.dead_letter_exchange,
        routing_key=route[1],
        body=body,
        message_id=message_id or str(uuid.uuid4()),
        type=type_,
        headers={
            **clean_headers(headers),
            H_REASON: reason,
            H_EXCEPTION: text,
            H_STACK: stack,
            H_ORIGINAL_EXCHANGE: route[0],
            H_ORIGINAL_ROUTING_KEY: route[1],
            H_ORIGINAL_QUEUE: topo.names.consumer_queue(consumer),
            H_ATTEMPTS: attempts,
            # A string: pika (used by the dlq console) cannot decode every numeric type.
            H_DEAD_LETTERED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
        },
    )


def next_delay(attempts: int, delays: Sequence[float]) -> float:
    """The wait before attempt ``attempts + 1`` (the last delay repeats if too few)."""
    return delays[min(attempts, len(delays)) - 1]
