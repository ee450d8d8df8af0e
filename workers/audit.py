"""``audit``: one JSON log line per event, with the ids that tie it to its cause."""

from __future__ import annotations

import logging

from shared.messaging.names import H_CAUSATION_ID
from shared.messaging.publisher import ConfirmingPublisher
from shared.messaging.topology import CONSUMERS
from workers.delivery import Delivery

log = logging.getLogger("exchange_tokens.audit")


class Audit:
    consumer = "audit"

    def accepts_poison(self, delivery: Delivery) -> bool:
        """Dead-letter an unparseable message only if no other consumer receives its
        routing key (that consumer dead-letters it): one dead letter per bad message."""
        return not any(
            delivery.routing_key in keys
            for name, keys in CONSUMERS.items() if name != self.consumer
        )

    def handle(self, batch: list[Delivery], publisher: ConfirmingPublisher) -> list[str]:
        for d in batch:
            e = d.event
            assert e is not None
            with d.log_context():
                fields = {"type": e.type, "event_id": str(e.event_id),
                          "token_id": str(e.token_id), "user_id": e.user_id,
                          "points": e.points}
                if H_CAUSATION_ID in d.headers:
                    fields["causation_id"] = str(d.headers[H_CAUSATION_ID])
                log.info("event", extra=fields)
        return ["logged"] * len(batch)
