"""Gauges read from the database and the broker every few seconds, whatever roles this
worker runs: outbox backlog and oldest age, dead-letter depth, active tokens past expiry.

The dead-letter depth comes from a passive ``queue.declare`` (its message count): reading
it never fetches a message, so it spends no delivery attempt.
"""

from __future__ import annotations

import logging
import threading

import amqp
from sqlalchemy import Engine, text

from shared.expiry_rules import due_sql
from shared.messaging import amqp_client
from shared.messaging.names import Names
from workers import metrics

log = logging.getLogger("exchange_tokens.monitor")

INTERVAL_SECONDS = 5.0
PAST_EXPIRY_GRACE = "5 seconds"  # tokens being refunded right now are not "lost"

_BACKLOG = text(
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
    " FROM outbox WHERE published_at IS NULL"
)
_PAST_EXPIRY = text(
    "SELECT count(*) FROM exchange_tokens WHERE "
    + due_sql(now=f"now() - interval '{PAST_EXPIRY_GRACE}'")
)


class Monitor:
    def __init__(self, engine: Engine, amqp_url: str, names: Names,
                 stop: threading.Event, interval: float = INTERVAL_SECONDS) -> None:
        self.engine = engine
        self.amqp_url = amqp_url
        self.names = names
        self.stop_event = stop
        self.interval = interval
        self._connection: amqp.Connection | None = None

    def measure(self) -> None:
        try:
            with self.engine.connect() as conn:
                count, age = conn.execute(_BACKLOG).one()
                past = conn.execute(_PAST_EXPIRY).scalar_one()
            metrics.OUTBOX_BACKLOG.set(count)
            metrics.OUTBOX_OLDEST_AGE.set(float(age))
            metrics.PAST_EXPIRY.set(past)
        except Exception as exc:  # noqa: BLE001 - a gauge is not worth a crash
            log.warning("database gauges not updated", extra={"error": repr(exc)})
        try:
            if self._connection is None:
                self._connection = amqp_client.connect(self.amqp_url, "exchange-tokens monitor")
            channel = self._connection.channel()
            try:
                _, depth, _ = channel.queue_declare(self.names.dead_letter_queue, passive=True)
            finally:
                channel.close()
            metrics.DEAD_LETTER_DEPTH.set(depth)
            self._connection.heartbeat_tick()
        except Exception as exc:  # noqa: BLE001
            amqp_client.close_quietly(self._connection)
            self._connection = None
            log.warning("dead-letter depth not updated", extra={"error": repr(exc)})

    def run(self) -> None:
        try:
            while True:
                self.measure()
                if self.stop_event.wait(self.interval):
                    return
        finally:
            amqp_client.close_quietly(self._connection)
