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
from workers.delivery import Delivery

log = logging.getLogger("exchange_tokens.schedule_expiry")

LIFETIME_REDECLARE_SECONDS = 60.0


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
        """Declare this lifetime's queue before its first use, and again every minute
        while publishing to it: if it was deleted (by ops, with a broker's data), timers
        fail to route until it is back, so it comes back within a minute on its own."""
        now = self._clock()
        if (self._lifetime_declared_at is not None
                and now - self._lifetime_declared_at < LIFETIME_REDECLARE_SECONDS):
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
