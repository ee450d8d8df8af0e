"""``expire``: a token's timer came due; refund it (the foundation's idempotent expire).

A batch of due timers is refunded in one transaction (:func:`services.expire_due`); each
row keeps its own guard (``DELETE … WHERE status = 'active' AND expires_at <= now()``),
so duplicates, redeliveries and replays refund once. A timer that arrives early (clock
skew, rounding) is delayed again for the remainder; one that arrives late is applied at
once; one for a token already redeemed, cancelled or restored is a no-op.
"""

from __future__ import annotations

import uuid

from schemas.events import TokenExpired
from shared.messaging.delays import delay_target
from shared.messaging.failures import clean_headers
from shared.messaging.publisher import ConfirmingPublisher, Outgoing
from shared.messaging.topology import Topology
from shared.services.deps import Deps
from shared.services.expire import expire_due
from workers import metrics
from workers.delivery import Delivery


class Expire:
    consumer = "expire"

    def __init__(self, topo: Topology, deps: Deps) -> None:
        self.topo = topo
        self.deps = deps

    def accepts_poison(self, delivery: Delivery) -> bool:
        return True

    def handle(self, batch: list[Delivery], publisher: ConfirmingPublisher) -> list[str]:
        token_ids = list(dict.fromkeys(
            d.event.token_id for d in batch if isinstance(d.event, TokenExpired)
        ))
        outcome = expire_due(self.deps, token_ids)
        restored = {r.token_id: r for r in outcome.restored}
        metrics.refunded(outcome.restored, metrics.REFUNDS)
        again, outcomes = [], []
        counted: set[uuid.UUID] = set()
        for d in batch:
            e = d.event
            if not isinstance(e, TokenExpired):
                outcomes.append("ignored")
            elif e.token_id in outcome.not_due and outcome.as_of is not None:
                remaining = outcome.not_due[e.token_id] - outcome.as_of
                exchange, key = delay_target(
                    self.topo, remaining.total_seconds() * 1000, self.consumer)
                again.append(Outgoing(
                    exchange=exchange,
                    routing_key=key,
                    body=d.body, message_id=d.message_id or str(e.event_id), type=d.type,
                    headers=clean_headers(d.headers),
                ))
                outcomes.append("redelayed")
            elif e.token_id in restored and e.token_id not in counted:
                counted.add(e.token_id)
                outcomes.append("restored")
            else:
                outcomes.append("noop")
        if again:
            # Confirmed before the early deliveries are acked (else a crash could lose them).
            publisher.publish_all(again)
            metrics.REDELAYED.inc(len(again))
        return outcomes
