"""The consumer skeleton every queue role runs on: connect, consume in small batches, ack
after the handler's database commit, retry or dead-letter failures, reconnect with backoff.

Why these choices:

- **Ack after commit.** The handler commits, then we ack. A crash in between redelivers
  the message (unacked deliveries are requeued when the connection drops) and the
  handler's idempotency guard makes the second run a no-op.
- **Bounded prefetch** (``basic.qos``): at most ``prefetch`` unacked messages per
  consumer, so a dying worker strands few messages and several workers share the load.
- **Small batches.** Messages that are already here (up to ``batch_size`` or ``batch_wait``
  seconds after the first) are handled together: the expire role refunds a whole batch in
  one transaction (each row still guarded), and acks are cheap.
- **Heartbeats.** py-amqp sends them only when asked, so the loop waits for deliveries in
  slices of at most 200 ms and ticks the heartbeat each time; handlers are short.
- **Database outage ≠ handler error.** When the database is unreachable the consumer keeps
  its batch unacked, pauses with backoff and tries the same batch again once the database
  answers: no attempt is counted and nothing is requeued (a quorum queue counts every
  requeue against ``x-delivery-limit``).
- **Graceful stop.** On stop the loop cancels its consumer, finishes the batch in hand,
  acks, and closes; prefetched messages not yet handled are requeued by the broker.

The roles' side is in workers/delivery.py, retries and dead letters in
workers/consumer_failures.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import amqp
from pydantic import ValidationError
from sqlalchemy import Engine, text

from schemas.events import parse_event
from shared import shutdown
from shared.messaging import amqp_client, amqp_speedups
from shared.messaging.failures import (
    MAX_ATTEMPTS,
    REFUSED,
    RETRY_DELAYS_SECONDS,
    Refused,
    attempts_of,
)
from shared.messaging.publisher import (
    ConfirmingPublisher,
    PublishFailed,
    Sent,
)
from shared.messaging.topology import Topology
from shared.persistence.transactions import is_unavailable
from workers import metrics
from workers.backoff import Backoff
from workers.consumer_failures import FailureRules, Failures
from workers.delivery import Delivery, Role

log = logging.getLogger("exchange_tokens.consumer")

WAIT_SLICE_SECONDS = 0.2
STOP_GRACE_SECONDS = shutdown.CONSUMER_GRACE_SECONDS


@dataclass
class ConsumerOptions:
    prefetch: int = 100
    batch_size: int = 100
    batch_wait: float = 0.01
    retry_delays: Sequence[float] = field(default_factory=lambda: RETRY_DELAYS_SECONDS)
    max_attempts: int = MAX_ATTEMPTS


class ConsumerCancelled(Exception):
    """The broker cancelled our consumer: reconnect and consume again."""


class DatabaseDown(Exception):
    """Raised inside the loop to pause the consumer; never escapes it."""


# What makes the loop reconnect (unacked deliveries are requeued by the broker).
STABLE_SECONDS = 30.0  # a connection up this long resets the reconnect backoff

_RECONNECT: tuple[type[BaseException], ...] = (
    *amqp_client.CONNECTION_ERRORS, PublishFailed, ConsumerCancelled,
)

# The running loops of each consumer in this process: the "consuming" gauge is 1 only if
# every one of them is.
_LOOPS: dict[str, list[ConsumerLoop]] = {}


class ConsumerLoop:
    """Runs one :class:`Role` until ``stop`` is set; reconnects through broker outages."""

    def __init__(
        self, role: Role, amqp_url: str, topo: Topology, engine: Engine,
        stop: threading.Event, options: ConsumerOptions | None = None,
    ) -> None:
        self.role = role
        self.amqp_url = amqp_url
        self.topo = topo
        self.engine = engine
        self.stop_event = stop
        self.options = options or ConsumerOptions()
        self.queue = topo.names.consumer_queue(role.consumer)
        self._buffer: list[amqp.Message] = []
        self._connection: amqp.Connection | None = None
        self._acks: amqp_speedups.FrameBatch | None = None
        # Health, read by the metrics endpoint at scrape time: registered on the queue,
        # and the loop ran within two heartbeat intervals (a stuck loop reads 0).
        self._registered = False
        self._cancelled = False
        self._alive_at = 0.0
        # A handled batch whose deferred publishes await their confirms: acked once they
        # come, while the next batch is already being handled (confirm latency overlaps).
        self._unconfirmed: tuple[list[Delivery], list[str], list[Sent]] | None = None
        self.failures = Failures(topo, role.consumer, FailureRules(
            self.options.retry_delays, self.options.max_attempts), role.accepts_poison)
        _LOOPS.setdefault(role.consumer, []).append(self)
        metrics.CONSUMING.labels(role.consumer).set_function(
            lambda: min((loop._consuming() for loop in _LOOPS.get(role.consumer, [])),
                        default=0.0))

    def _consuming(self) -> float:
        fresh = time.monotonic() - self._alive_at < 2 * amqp_client.HEARTBEAT_SECONDS
        return 1.0 if self._registered and fresh else 0.0

    def _on_cancel(self, consumer_tag: str) -> None:
        """The broker cancelled our consumer (queue deleted, node restarting)."""
        self._cancelled = True

    # Lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        backoff = Backoff()
        log.info("consumer started", extra={"consumer": self.role.consumer, "queue": self.queue})
        while not self.stop_event.is_set():
            try:
                self._consume(backoff)
            except _RECONNECT as exc:
                delay = backoff.next()
                log.warning("broker connection lost; consumer reconnects",
                            extra={"consumer": self.role.consumer, "error": repr(exc),
                                   "retry_in_s": round(delay, 2)})
                self.stop_event.wait(delay)
            except Exception:
                log.exception("consumer crashed; restarting", extra={"consumer": self.role.consumer})
                self.stop_event.wait(backoff.next())
            finally:
                self._registered = False
                self._unconfirmed = None  # unacked: redelivered, published again (harmless)
                amqp_client.close_quietly(self._connection)
                self._connection = None
                self._buffer.clear()  # unacked: the broker requeues them on close
        _LOOPS[self.role.consumer].remove(self)
        log.info("consumer stopped", extra={"consumer": self.role.consumer})

    def _consume(self, backoff: Backoff) -> None:
        connection = amqp_client.connect(self.amqp_url, f"exchange-tokens {self.role.consumer}")
        self._connection = connection
        channel = connection.channel()
        channel.basic_qos(0, self.options.prefetch, False)
        self._cancelled = False
        tag = channel.basic_consume(self.queue, callback=self._buffer.append,
                                    on_cancel=self._on_cancel)
        publisher = ConfirmingPublisher(connection, self.stop_event)
        self._registered = True
        # The backoff starts over once this connection has done something, not when it
        # opens: a failure that comes back after every connect (a queue a handler
        # publishes to is missing, confirms stall under a disk alarm) would otherwise
        # reconnect every 0.2 s, and each close requeues the prefetched messages with
        # their delivery count raised: ten rounds and the broker parks good messages.
        connected_at = time.monotonic()
        while not self.stop_event.is_set():
            self._alive_at = time.monotonic()
            if self._alive_at - connected_at > STABLE_SECONDS:
                backoff.reset()  # idle but up: the next loss starts from the shortest wait
            connection.heartbeat_tick()
            if self._cancelled:
                raise ConsumerCancelled(self.queue)
            if not self._buffer:
                if self._unconfirmed is not None:  # idle: do not sit on acks
                    self._settle_unconfirmed(channel, publisher)
                    continue
                amqp_client.drain(connection, WAIT_SLICE_SECONDS)
                continue
            self._gather(connection)
            self._process_buffer(channel, publisher)
            backoff.reset()  # a batch went through
        # Stop: no new deliveries; finish what we hold, ack it, then close. Every reply is
        # awaited briefly: the worker's stop deadline holds even if the broker hangs.
        self._registered = False
        amqp_client.shorten_waits(connection)
        channel.basic_cancel(tag)
        while self._buffer and amqp_client.drain(connection, 0):
            pass
        self._process_buffer(channel, publisher, stopping=True)
        self._settle_unconfirmed(channel, publisher)
        amqp_client.close_quietly(connection)

    def _gather(self, connection: amqp.Connection) -> None:
        """Let a batch fill: up to batch_size messages; read on while messages are already
        waiting in the socket, and wait for more at most batch_wait after the first."""
        deadline = time.monotonic() + self.options.batch_wait
        while len(self._buffer) < self.options.batch_size:
            if amqp_client.drain(connection, 0):
                continue
            left = deadline - time.monotonic()
            if left <= 0 or not amqp_client.drain(connection, left):
                break

    # One batch ---------------------------------------------------------------------------
    def _process_buffer(
        self, channel: amqp.Channel, publisher: ConfirmingPublisher, stopping: bool = False
    ) -> None:
        """Handle one batch from the buffer (every batch when stopping, for at most
        STOP_GRACE_SECONDS: what is left is requeued by the broker when we close)."""
        grace_end = time.monotonic() + STOP_GRACE_SECONDS
        while self._buffer:
            batch = [Delivery.of(m) for m in self._buffer[: self.options.batch_size]]
            del self._buffer[: len(batch)]
            parsed = []
            for d in batch:
                try:
                    d.event = parse_event(d.body)
                    parsed.append(d)
                except (ValidationError, ValueError, UnicodeDecodeError) as exc:
                    self.failures.poison(channel, publisher, d, exc)
            if parsed:
                self._handle_with_pause(channel, publisher, parsed, stopping)
            if not stopping or time.monotonic() > grace_end:
                return

    def _handle_with_pause(
        self, channel: amqp.Channel, publisher: ConfirmingPublisher,
        batch: list[Delivery], stopping: bool,
    ) -> None:
        pause = Backoff(first=0.5, cap=15.0)
        while True:
            try:
                self._handle(channel, publisher, batch)
                return
            except DatabaseDown as exc:
                if stopping or self.stop_event.is_set():
                    return  # leave them unacked: requeued when we close
                self._settle_unconfirmed(channel, publisher)
                delay = pause.next()
                log.warning("database unavailable; consumer paused (no attempt counted)",
                            extra={"consumer": self.role.consumer, "error": str(exc.__cause__),
                                   "retry_in_s": round(delay, 2), "held": len(batch)})
                self._sleep_alive(delay)
                while not self.stop_event.is_set() and not self._database_answers():
                    self._sleep_alive(pause.next())

    def _handle(
        self, channel: amqp.Channel, publisher: ConfirmingPublisher, batch: list[Delivery]
    ) -> None:
        try:
            outcomes = self._run_role(batch, publisher)
        except DatabaseDown:
            raise
        except _RECONNECT:
            raise
        except Exception as exc:  # noqa: BLE001 - any handler error is retried
            if len(batch) == 1 and isinstance(exc, Refused):
                d = batch[0]
                with d.log_context():
                    self.failures.dead_letter(channel, publisher, d, REFUSED, exc,
                                              attempts_of(d.headers) + 1)
                return
            if len(batch) == 1:
                self.failures.fail(channel, publisher, batch[0], exc)
                return
            log.warning("batch failed; handling its messages one by one",
                        extra={"consumer": self.role.consumer, "error": repr(exc)})
            for d in batch:
                self._handle_with_pause(channel, publisher, [d], self.stop_event.is_set())
            return
        tickets = publisher.take_deferred()
        self._settle_unconfirmed(channel, publisher)
        if tickets:
            self._unconfirmed = (batch, outcomes, tickets)
        else:
            self._ack(channel, batch, outcomes)

    def _settle_unconfirmed(self, channel: amqp.Channel, publisher: ConfirmingPublisher) -> None:
        """Wait for the previous batch's deferred confirms, then ack it."""
        if self._unconfirmed is None:
            return
        batch, outcomes, tickets = self._unconfirmed
        self._unconfirmed = None
        for ticket in tickets:
            if not all(publisher.wait(ticket)):
                raise PublishFailed("deferred publishes not confirmed; the batch is redelivered")
        self._ack(channel, batch, outcomes)

    def _ack(self, channel: amqp.Channel, batch: list[Delivery], outcomes: list[str]) -> None:
        # One encoder per connection: building one allocates a frame-sized buffer.
        if self._acks is None or self._acks.connection is not channel.connection:
            self._acks = amqp_speedups.FrameBatch(channel.connection)
        for d in batch:
            self._acks.ack(channel, d.delivery_tag)  # after the handler's commit and confirms
        self._acks.flush()
        for outcome, count in Counter(outcomes).items():
            metrics.MESSAGES.labels(self.role.consumer, outcome).inc(count)

    def _run_role(self, batch: list[Delivery], publisher: ConfirmingPublisher) -> list[str]:
        try:
            if len(batch) == 1:
                with batch[0].log_context():
                    return self.role.handle(batch, publisher)
            return self.role.handle(batch, publisher)
        except Exception as exc:
            publisher.take_deferred()  # sent, but the batch is not done: it comes back
            if is_unavailable(exc):
                raise DatabaseDown() from exc
            raise

    def _database_answers(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def _sleep_alive(self, seconds: float) -> None:
        """Wait while keeping the connection alive (heartbeats; deliveries just buffer)."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            assert self._connection is not None
            self._alive_at = time.monotonic()
            self._connection.heartbeat_tick()
            amqp_client.drain(self._connection, min(WAIT_SLICE_SECONDS, seconds))
