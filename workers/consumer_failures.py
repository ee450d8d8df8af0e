"""What a consumer does with a message it cannot handle: retry it later, or park it.

A handler error schedules a retry copy through the delay levels (the attempt counted in
its headers) and acks the original once the copy is confirmed; the last attempt, or a
message that does not parse, goes to the dead-letter exchange instead, confirmed before
the ack. Nothing is lost between the two: until the ack the broker still holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import amqp

from shared.messaging.failures import (
    EXHAUSTED,
    POISON,
    attempts_of,
    dead_letter_message,
    next_delay,
    original_route,
    retry_message,
)
from shared.messaging.publisher import ConfirmingPublisher, new_message_id
from shared.messaging.topology import Topology
from workers import metrics
from workers.delivery import Delivery, event_fields

log = logging.getLogger("exchange_tokens.consumer")


@dataclass
class FailureRules:
    """How many attempts a message gets, and how long each retry waits."""

    retry_delays: Sequence[float]
    max_attempts: int


@dataclass
class Failures:
    """Retries and dead letters for one consumer's queue."""

    topo: Topology
    consumer: str
    options: FailureRules
    accepts_poison: Callable[[Delivery], bool]

    def _route(self, d: Delivery) -> tuple[str, str]:
        event_type = d.event.type if d.event is not None else None
        return original_route(self.topo, self.consumer, d.exchange, d.routing_key,
                              d.headers, event_type)

    def poison(
        self, channel: amqp.Channel, publisher: ConfirmingPublisher, d: Delivery, exc: Exception
    ) -> None:
        with d.log_context():
            if not self.accepts_poison(d):
                log.error("unparseable message ignored (another consumer dead-letters it)",
                          extra={"consumer": self.consumer, "routing_key": d.routing_key})
                channel.basic_ack(d.delivery_tag)
                metrics.MESSAGES.labels(self.consumer, "poison_ignored").inc()
                return
            self.dead_letter(channel, publisher, d, POISON, exc, attempts_of(d.headers) + 1)

    def fail(
        self, channel: amqp.Channel, publisher: ConfirmingPublisher, d: Delivery, exc: Exception
    ) -> None:
        attempts = attempts_of(d.headers) + 1
        with d.log_context():
            if attempts >= self.options.max_attempts:
                self.dead_letter(channel, publisher, d, EXHAUSTED, exc, attempts)
                return
            delay = next_delay(attempts, self.options.retry_delays)
            publisher.publish_all([retry_message(
                self.topo, self.consumer, body=d.body,
                message_id=d.message_id or new_message_id(), type_=d.type, headers=d.headers,
                route=self._route(d), attempts=attempts, delay_s=delay, exc=exc,
            )])
            channel.basic_ack(d.delivery_tag)  # the retry copy is safely queued
            metrics.RETRIES.labels(self.consumer).inc()
            metrics.MESSAGES.labels(self.consumer, "retried").inc()
            log.warning("handler failed; retry scheduled", exc_info=exc, extra={
                "consumer": self.consumer, "attempts": attempts, "retry_in_s": delay,
                **event_fields(d)})

    def dead_letter(
        self, channel: amqp.Channel, publisher: ConfirmingPublisher, d: Delivery,
        reason: str, exc: Exception, attempts: int,
    ) -> None:
        message = dead_letter_message(
            self.topo, self.consumer, body=d.body, message_id=d.message_id,
            type_=d.type, headers=d.headers, route=self._route(d), attempts=attempts,
            reason=reason, exc=exc,
        )
        publisher.publish_all([message])
        channel.basic_ack(d.delivery_tag)  # the parking queue has it (confirmed)
        metrics.DEAD_LETTERS.labels(self.consumer, reason).inc()
        metrics.MESSAGES.labels(self.consumer, f"dead_lettered_{reason}").inc()
        log.error("message dead-lettered", extra={
            "consumer": self.consumer, "reason": reason, "attempts": attempts,
            "error": f"{type(exc).__name__}: {exc}"[:500], "dead_letter_id": message.message_id,
            **event_fields(d)})
