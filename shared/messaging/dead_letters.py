"""What a dead letter is, read from the parking queue: its id, its event, why it failed,
and where it came from.

Two kinds arrive in ``<ns>.dead-letter``:

* ours, parked by a worker (poison body, or handler failures exhausted), with our own
  headers: reason, exception, stack, original exchange / routing key / queue, attempts,
  dead-lettered-at (``shared.messaging.names``);
* the broker's, dead-lettered by RabbitMQ itself (a consumer quorum queue's delivery limit
  exceeded), carrying only ``x-death`` and ``x-first-death-*``.

:class:`DeadLetter` reads both into one shape. Everything here is pure: no broker, no
database, so ``list`` and ``replay --id`` agree on ids whatever process computes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pika.spec import BasicProperties

from shared.messaging.names import (
    H_ATTEMPTS,
    H_DEAD_LETTERED_AT,
    H_EXCEPTION,
    H_ORIGINAL_EXCHANGE,
    H_ORIGINAL_QUEUE,
    H_ORIGINAL_ROUTING_KEY,
    H_REASON,
    H_REPLAYED,
    H_STACK,
)

# Headers that describe one failure, not the event: a replay drops them, so the replayed
# message looks like the original and, should it fail again, gets fresh diagnostics.
# x-delivery-count is the quorum queue's own counter: a replay starts from zero.
FAILURE_HEADERS = frozenset({
    H_REASON, H_EXCEPTION, H_STACK, H_DEAD_LETTERED_AT,
    "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
    "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
    "x-delivery-count",
})

# Headers the broker may rewrite while a message waits (none in a classic queue today;
# listed so a broker upgrade cannot change an id between `list` and `replay`).
_VOLATILE_HEADERS = frozenset({"x-delivery-count"})

HASH_ID_PREFIX = "dl-"


def _text(value: Any) -> str | None:
    """A header value as text (pika leaves non-UTF-8 long strings as bytes)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _canonical(value: Any) -> Any:
    """JSON-able and order-independent, for hashing headers."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes | datetime):
        return _text(value)
    return value


def derive_id(body: bytes, headers: dict[str, Any] | None) -> str:
    """A stable id for a dead letter that arrived without ``message_id``: a hash of its
    body and headers. A classic queue keeps both unchanged while the message waits (a
    get-and-requeue rewrites neither), so every ``list`` and ``replay`` computes the same."""
    stable = {k: v for k, v in (headers or {}).items() if k not in _VOLATILE_HEADERS}
    digest = hashlib.sha256()
    digest.update(body)
    digest.update(b"\0")
    digest.update(json.dumps(_canonical(stable), sort_keys=True, default=str).encode())
    return HASH_ID_PREFIX + digest.hexdigest()[:24]


def _latest_death(headers: dict[str, Any]) -> dict[str, Any]:
    """The broker's record of the death that parked the message. ``x-death`` is kept most
    recent first; a message that went through our TTL delay chain also carries entries of
    reason ``expired`` for the delay queues, which ``x-first-death-*`` would point at."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


@dataclass(frozen=True)
class DeadLetter:
    """One message in the parking queue, as read (never consumed) by the console."""

    id: str
    body: bytes
    properties: BasicProperties
    headers: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] | None = None  # the body as JSON, if it is a JSON object
    parse_error: str | None = None

    @classmethod
    def read(cls, body: bytes, properties: BasicProperties) -> DeadLetter:
        headers = dict(properties.headers or {})
        message_id = _text(properties.message_id)
        event: dict[str, Any] | None = None
        error = None
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                event = parsed
            else:
                error = "body is JSON but not an object"
        except (ValueError, UnicodeDecodeError) as exc:
            error = f"body is not JSON ({exc})"
        return cls(
            id=message_id or derive_id(body, headers),
            body=body,
            properties=properties,
            headers=headers,
            event=event,
            parse_error=error,
        )

    # What the event is ---------------------------------------------------------------------
    @property
    def type(self) -> str | None:
        """The event's type; when the body cannot tell (not JSON, no ``type``), the routing
        key it was published with, which for our events is the type."""
        value = (self.event or {}).get("type") or self.properties.type
        return _text(value) or self._routed_with()

    @property
    def token_id(self) -> str | None:
        return _text((self.event or {}).get("token_id"))

    @property
    def user_id(self) -> str | None:
        return _text((self.event or {}).get("user_id"))

    # Why it is here -------------------------------------------------------------------------
    @property
    def broker_dead_lettered(self) -> bool:
        """True when RabbitMQ parked it (no reason header of ours)."""
        return H_REASON not in self.headers

    @property
    def reason(self) -> str | None:
        """``poison`` / ``exhausted`` (ours), or the broker's (``delivery_limit``,
        ``rejected``, ``expired``, ``maxlen``)."""
        return _text(
            self.headers.get(H_REASON)
            or _latest_death(self.headers).get("reason")
            or self.headers.get("x-last-death-reason")
            or self.headers.get("x-first-death-reason")
        )

    @property
    def exception(self) -> str | None:
        return _text(self.headers.get(H_EXCEPTION))

    @property
    def exception_type(self) -> str:
        """The exception's class name (``"ValueError: boom"`` → ``ValueError``), for grouping."""
        if self.exception:
            return self.exception.split(":", 1)[0].strip() or self.exception
        return f"(broker: {self.reason})" if self.broker_dead_lettered else "(none)"

    @property
    def stack(self) -> str | None:
        return _text(self.headers.get(H_STACK))

    @property
    def attempts(self) -> int | None:
        """Our attempt count; for a broker dead letter, the quorum queue's delivery count
        if it kept one (RabbitMQ 3.10 drops it when dead-lettering: then unknown, None;
        ``x-death``'s ``count`` counts deaths, not deliveries, so it is not used)."""
        for value in (self.headers.get(H_ATTEMPTS), self.headers.get("x-delivery-count")):
            if (n := _int(value)) is not None:
                return n
        return None

    @property
    def replayed(self) -> int:
        return _int(self.headers.get(H_REPLAYED)) or 0

    @property
    def dead_lettered_at(self) -> str | None:
        return _text(self.headers.get(H_DEAD_LETTERED_AT) or _latest_death(self.headers).get("time"))

    # Where it came from ---------------------------------------------------------------------
    @property
    def original_exchange(self) -> str | None:
        """Where a replay publishes. ``""`` (the default exchange) is a real answer."""
        if H_ORIGINAL_EXCHANGE in self.headers:
            return _text(self.headers[H_ORIGINAL_EXCHANGE])
        death = _latest_death(self.headers)
        if "exchange" in death:
            return _text(death["exchange"])
        for name in ("x-last-death-exchange", "x-first-death-exchange"):
            if name in self.headers:
                return _text(self.headers[name])
        return None

    @property
    def original_routing_key(self) -> str | None:
        return self._routed_with() or self.type  # our events are routed by their type

    def _routed_with(self) -> str | None:
        """The routing key the headers record (ours, else the broker's ``x-death``)."""
        if H_ORIGINAL_ROUTING_KEY in self.headers:
            return _text(self.headers[H_ORIGINAL_ROUTING_KEY])
        keys = _latest_death(self.headers).get("routing-keys")
        if isinstance(keys, list) and keys:
            return _text(keys[0])
        return None

    @property
    def original_queue(self) -> str | None:
        return _text(
            self.headers.get(H_ORIGINAL_QUEUE)
            or _latest_death(self.headers).get("queue")
            or self.headers.get("x-last-death-queue")
            or self.headers.get("x-first-death-queue")
        )

    # Replaying ------------------------------------------------------------------------------
    def replay_properties(self) -> BasicProperties:
        """The original message again: same body, message id and properties, persistent;
        the failure's diagnostics dropped, our attempt counter back to 0 (so it gets its
        full retries again) and the replay counter incremented."""
        headers = {k: v for k, v in self.headers.items() if k not in FAILURE_HEADERS}
        headers[H_ATTEMPTS] = 0
        headers[H_REPLAYED] = self.replayed + 1
        p = self.properties
        return BasicProperties(
            content_type=p.content_type or "application/json",
            content_encoding=p.content_encoding,
            headers=headers,
            delivery_mode=2,  # persistent: the replayed message survives a broker restart
            priority=p.priority,
            correlation_id=p.correlation_id,
            reply_to=p.reply_to,
            message_id=p.message_id,
            timestamp=p.timestamp,
            type=p.type,
            app_id=p.app_id,
            # Not user_id: the broker checks it against the publishing login and would
            # refuse the replay if ops connect as another user. Not expiration: a replay
            # must not evaporate before it is handled.
        )

    def summary(self) -> dict[str, Any]:
        """The row ``dlq list --json`` prints."""
        return {
            "id": self.id,
            "message_id": _text(self.properties.message_id),
            "type": self.type,
            "token_id": self.token_id,
            "user_id": self.user_id,
            "attempts": self.attempts,
            "reason": self.reason,
            "exception": self.exception,
            "exception_type": self.exception_type,
            "dead_lettered_at": self.dead_lettered_at,
            "original_exchange": self.original_exchange,
            "original_routing_key": self.original_routing_key,
            "original_queue": self.original_queue,
            "replayed": self.replayed,
            "broker_dead_lettered": self.broker_dead_lettered,
        }

    def details(self) -> dict[str, Any]:
        """Everything ``dlq show`` prints."""
        return {
            **self.summary(),
            "stack": self.stack,
            "headers": _canonical(self.headers),
            "properties": {
                k: _text(v) for k, v in {
                    "content_type": self.properties.content_type,
                    "delivery_mode": self.properties.delivery_mode,
                    "timestamp": self.properties.timestamp,
                    "app_id": self.properties.app_id,
                    "correlation_id": self.properties.correlation_id,
                }.items() if v is not None
            },
            "body": self.event if self.event is not None else self.body.decode("utf-8", "replace"),
            "parse_error": self.parse_error,
        }
