"""``schedule-expiry``: on TokenIssued, put the token's timer into the broker.

The timer is a ``TokenExpired`` command (``restored=False``) published to the ``expire``
consumer through the lifetime queue (one hop, when it is due one lifetime from now, the
common case) or the binary delay levels (any other delay), due at the token's
``expires_at``. It waits in RabbitMQ, never in this process (a worker may die at any
time; a message held in memory for minutes would also trip ``consumer_timeout``). The
delay is measured against PostgreSQL's clock, the one clock: ``expires_at - now()``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, func, select

from schemas.events import TokenExpired, TokenIssued
from shared.messaging.delays import expiry_target
from shared.messaging.names import H_CAUSATION_ID, H_REQUEST_ID
from shared.messaging.publisher import ConfirmingPublisher, Outgoing
from shared.messaging.topology import Topology
from workers.consumer import Delivery

log = logging.getLogger("exchange_tokens.schedule_expiry")


def timer_for(event: TokenIssued) -> TokenExpired:
    """The expiry command of one issued token. Its id derives from the TokenIssued's, so a
    duplicate TokenIssued schedules a recognisable duplicate (refunded once anyway)."""
    return TokenExpired(
        event_id=uuid.uuid5(event.event_id, "expire"),
        token_id=event.token_id,
        user_id=event.user_id,
        points=event.points,
        expires_at=event.expires_at,
        restored=False,
    )


def timer_message(topo: Topology, timer: TokenExpired, now: datetime,
                  headers: dict[str, object]) -> Outgoing:
    exchange, key = expiry_target(topo, (timer.expires_at - now).total_seconds() * 1000)
    return Outgoing(
        exchange=exchange,
        routing_key=key,
        body=timer.model_dump_json().encode(),
        message_id=str(timer.event_id),
        type=timer.type,
        headers=headers,
    )


class ScheduleExpiry:
    consumer = "schedule-expiry"

    def __init__(self, topo: Topology, engine: Engine,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topo = topo
        self.engine = engine
        self._clock = clock
        self._lifetime_declared_at: float | None = None

    def _keep_lifetime_queue(self, publisher: ConfirmingPublisher) -> None:
        """Declare this lifetime's queue before its first use and again at least every
        quarter of its x-expires while publishing to it, so the broker only ever removes
        it once it has been idle (and so empty) for a while."""
        now = self._clock()
        every = self.topo.lifetime_queue_expires_ms / 4000
        if self._lifetime_declared_at is not None and now - self._lifetime_declared_at < every:
            return
        publisher.channel.queue_declare(self.topo.lifetime_queue, durable=True,
                                        auto_delete=False,
                                        arguments=self.topo.lifetime_queue_arguments())
        self._lifetime_declared_at = now

    def accepts_poison(self, delivery: Delivery) -> bool:
        return True

    def handle(self, batch: list[Delivery], publisher: ConfirmingPublisher) -> list[str]:
        with self.engine.connect() as conn:
            now = conn.execute(select(func.now())).scalar_one()
        messages, outcomes = [], []
        for d in batch:
            if not isinstance(d.event, TokenIssued):
                outcomes.append("ignored")
                continue
            headers: dict[str, object] = {H_CAUSATION_ID: d.message_id or ""}
            if H_REQUEST_ID in d.headers:
                headers[H_REQUEST_ID] = d.headers[H_REQUEST_ID]
            messages.append(timer_message(self.topo, timer_for(d.event), now, headers))
            outcomes.append("scheduled")
            with d.log_context():  # ties the timer to the API request that issued it
                log.info("expiry scheduled", extra={
                    "token_id": str(d.event.token_id), "user_id": d.event.user_id,
                    "points": d.event.points, "expires_at": d.event.expires_at.isoformat()})
        if any(m.routing_key == self.topo.lifetime_queue for m in messages):
            self._keep_lifetime_queue(publisher)
        # Confirmed before the TokenIssued deliveries are acked (a crash in between only
        # schedules the timer twice); deferred, so the broker's confirm latency overlaps
        # with the next batch.
        publisher.defer(messages)
        return outcomes
