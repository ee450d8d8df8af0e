"""Every broker name and header this service uses, derived from ``BROKER_NAMESPACE``.

One module (as dramatiq's ``q_name`` / ``dq_name``), so the topology, the relay, the
consumers, the dead-letter console and the tests agree on names without repeating strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    namespace: str

    def _n(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    # Exchanges ---------------------------------------------------------------------------
    @property
    def events_exchange(self) -> str:
        """Topic exchange the outbox publishes to; routing key = event type."""
        return self._n("events")

    @property
    def dead_letter_exchange(self) -> str:
        """Where poison and exhausted messages go (contract: ``<ns>.dead-letter``)."""
        return self._n("dead-letter")

    # Queues ------------------------------------------------------------------------------
    @property
    def dead_letter_queue(self) -> str:
        """The parking queue: no TTL, no delivery limit; only ops replay or purge it."""
        return self._n("dead-letter")

    def consumer_queue(self, consumer: str) -> str:
        return self._n(consumer)


# Headers we set ourselves (RabbitMQ 4.x no longer interprets x-death on re-published
# messages, so attempts and provenance are carried in our own headers).
H_ATTEMPTS = "x-attempts"  # deliveries tried so far, counted by our consumers
H_REASON = "x-dead-letter-reason"  # "poison" | "exhausted" | broker reasons
H_EXCEPTION = "x-exception"  # exception type and message of the last failure
H_STACK = "x-exception-stack"  # the last failure's traceback (trimmed)
H_ORIGINAL_EXCHANGE = "x-original-exchange"
H_ORIGINAL_ROUTING_KEY = "x-original-routing-key"
H_ORIGINAL_QUEUE = "x-original-queue"
H_DEAD_LETTERED_AT = "x-dead-lettered-at"  # RFC 3339 string (pika cannot encode floats)
H_REQUEST_ID = "x-request-id"  # the HTTP request that caused the event, if any
H_CAUSATION_ID = "x-causation-id"  # the message whose handling caused this one, if any
H_REPLAYED = "x-replayed"  # how many times ops replayed this message
