"""The outbox relay: publish committed events to ``<ns>.events``, then mark them sent.

One short transaction per batch::

    SELECT id FROM outbox WHERE published_at IS NULL AND <not backing off> ORDER BY id
        LIMIT n FOR UPDATE SKIP LOCKED  -- several relays take disjoint batches
    UPDATE outbox SET published_at = now() WHERE id = ANY(…) RETURNING …
                                        -- the mark is invisible until COMMIT
    publish the batch (persistent, mandatory), then wait for every confirm (pipelined)
    UPDATE outbox SET published_at = NULL, next_attempt_at = now() + backoff
        WHERE id IN (nacked, returned, unconfirmed)
    COMMIT

A crash between the confirms and the commit publishes the batch again later: a duplicate,
never a loss (the consumers are idempotent). A row whose message is nacked or returned
(routes to no queue) stays unsent and is tried again after a backoff that doubles with
its attempts, from 0.2 s to at most 30 s (migration 0007): rows the broker keeps refusing
never hold the head of the line, so one undeliverable event type (a binding missing)
does not stop the others. ``relay_failed_total`` and the row's ``attempts`` say so. The
relay polls every 100 ms when idle, at once after a full batch. It does not LISTEN: a NOTIFY in the
transactions that write the outbox serialised their commits (migration 0005).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, Row

from shared.messaging import amqp_client
from shared.messaging.names import Names
from shared.messaging.publisher import ConfirmingPublisher, Outgoing, Sent
from shared.persistence import outbox
from shared.persistence.transactions import is_unavailable
from shared.settings import Settings
from workers import metrics
from workers.backoff import Backoff

log = logging.getLogger("exchange_tokens.relay")

POLL_SECONDS = 0.1  # contract: poll at least every 200 ms; an event waits 50 ms on average

@dataclass
class _InFlight:
    conn: Connection
    tx: RootTransaction
    rows: list[Row[Any]]
    sent: Sent


def _abandon(conn: Connection, tx: RootTransaction) -> None:
    """Roll back (the rows stay unsent) and close, whatever state the connection is in."""
    try:
        if tx.is_active:
            tx.rollback()
    except Exception:  # noqa: BLE001, S110 - the connection may be dead already
        pass
    conn.close()


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0


class Relay:
    """Run :meth:`run` in a thread; :meth:`stop` (or the shared event) ends it."""

    def __init__(
        self, settings: Settings, engine: Engine, stop: threading.Event | None = None,
        batch_size: int = 500, amqp_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.stop_event = stop or threading.Event()
        self.batch_size = batch_size
        self.amqp_url = amqp_url or settings.amqp_url
        self.exchange = Names(settings.broker_namespace).events_exchange
        self.stats = RelayStats()
        self._connection = None
        self._publisher: ConfirmingPublisher | None = None

    def stop(self) -> None:
        self.stop_event.set()

    # Batches ---------------------------------------------------------------------------
    def _claim_and_send(self) -> _InFlight | None:
        """Open a transaction, claim a batch and write it to the broker (no waiting)."""
        publisher = self._ensure_publisher()
        conn = self.engine.connect()
        tx = conn.begin()
        try:
            ids = outbox.claim_unsent(conn, self.batch_size)
            if not ids:  # an idle poll: two round trips (the claim, the rollback)
                tx.rollback()
                conn.close()
                return None
            outbox.commit_without_flush_wait(conn)  # any time before COMMIT will do
            rows = sorted(outbox.mark_published(conn, ids), key=lambda r: r.id)
            sent = publisher.send([
                Outgoing(
                    exchange=self.exchange,
                    routing_key=r.event_type,  # contract: routing key = event type
                    body=r.body.encode(),
                    message_id=str(r.event_id),
                    type=r.event_type,
                    headers=r.headers or {},
                    timestamp=r.created_at,
                )
                for r in rows
            ])
        except BaseException:
            _abandon(conn, tx)
            raise
        return _InFlight(conn, tx, rows, sent)

    def _finish(self, batch: _InFlight) -> tuple[int, int]:
        """Wait for the batch's confirms, keep what failed unsent, commit."""
        assert self._publisher is not None
        try:
            results = self._publisher.wait(batch.sent)
            failed = [r.id for r, ok in zip(batch.rows, results, strict=True) if not ok]
            if failed:  # nacked, returned or unconfirmed: stays unsent, attempt counted
                outbox.release_for_retry(batch.conn, failed)
            batch.tx.commit()
        except BaseException:
            _abandon(batch.conn, batch.tx)
            raise
        batch.conn.close()
        done = len(batch.rows) - len(failed)
        self.stats.published += done
        self.stats.failed += len(failed)
        metrics.RELAY_PUBLISHED.inc(done)
        if failed:
            metrics.RELAY_FAILED.inc(len(failed))
            log.warning("events not confirmed or unroutable; kept for the next poll",
                        extra={"count": len(failed), "first_id": failed[0]})
        return done, len(failed)

    def drain(self) -> int:
        """Publish batches until no unsent, unlocked row is left (or one fails).

        Two batches overlap: while the broker confirms batch n, batch n+1 is claimed in
        its own transaction and written, so the database and the broker work at the same
        time. Each batch still commits only after its own confirms.
        """
        total = 0
        inflight: _InFlight | None = None
        try:
            while not self.stop_event.is_set():
                batch = self._claim_and_send()
                # `batch` is in flight from here on, whatever happens to the previous one:
                # it is finished below (or abandoned by `finally`), never left holding locks.
                previous, inflight = inflight, batch
                if previous is not None:
                    done, failed = self._finish(previous)
                    total += done
                    if failed:  # wait for the next poll rather than retry at once
                        break
                if batch is None or len(batch.rows) < self.batch_size:
                    break
            if inflight is not None:
                total += self._finish(inflight)[0]
                inflight = None
        finally:
            if inflight is not None:
                _abandon(inflight.conn, inflight.tx)
        return total

    # The loop ----------------------------------------------------------------------------
    def run(self) -> None:
        backoff = Backoff()
        log.info("relay started", extra={"exchange": self.exchange})
        try:
            while not self.stop_event.is_set():
                try:
                    self.drain()
                    backoff.reset()
                    self._wait_for_news()
                except amqp_client.CONNECTION_ERRORS as exc:
                    self._drop_broker()
                    delay = backoff.next()
                    log.warning("broker unavailable; relay retries",
                                extra={"error": repr(exc), "retry_in_s": round(delay, 2)})
                    self.stop_event.wait(delay)
                except Exception as exc:
                    if not is_unavailable(exc):
                        log.exception("relay failed; retrying")
                    else:
                        log.warning("database unavailable; relay retries",
                                    extra={"error": repr(exc)})
                    self._drop_broker()  # unconfirmed state is unknown: start clean
                    self.stop_event.wait(backoff.next())
        finally:
            self._drop_broker()
            log.info("relay stopped", extra={"published": self.stats.published})

    def _wait_for_news(self) -> None:
        """Until the next poll, or stop; keeps the AMQP heartbeats going."""
        if self._connection is not None:
            # Read what the broker sent (its heartbeats): py-amqp counts a heartbeat as
            # received only when it reads one, and an idle relay read nothing, so after two
            # intervals heartbeat_tick() declared the connection dead and it reconnected.
            amqp_client.drain(self._connection, 0)
            self._connection.heartbeat_tick()
        self.stop_event.wait(POLL_SECONDS)

    # Connections -------------------------------------------------------------------------
    def _ensure_publisher(self) -> ConfirmingPublisher:
        if self._publisher is None:
            self._connection = amqp_client.connect(self.amqp_url, "exchange-tokens relay")
            self._publisher = ConfirmingPublisher(self._connection, self.stop_event)
        return self._publisher

    def _drop_broker(self) -> None:
        amqp_client.close_quietly(self._connection)
        self._connection = None
        self._publisher = None
