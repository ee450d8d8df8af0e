"""Publishing with confirms, pipelined: send a whole batch, then wait for its confirms.

A publish is safe only once the broker confirmed it: an unconfirmed one may be lost. With ``mandatory``,
a message that routes to no queue comes back as ``basic.return`` *before* its
``basic.ack`` (RabbitMQ sends the return first), so "acked and not returned" means "in a
queue". Anything not confirmed within the timeout counts as not published: the caller
keeps its outbox row or its delivery and tries again later, which may duplicate a message
(consumers are idempotent) but never loses one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import amqp

from shared import shutdown
from shared.messaging.amqp_client import drain
from shared.messaging.amqp_speedups import FrameBatch

CONFIRM_TIMEOUT_SECONDS = 10.0
# Once the worker is stopping, confirms still awaited get this long, then count as not
# confirmed (the caller keeps the rows unsent, or the messages unacked: both come back),
# so a hung broker cannot hold a role past the worker's stop deadline.
STOPPING_CONFIRM_SECONDS = shutdown.CONFIRM_SECONDS


@dataclass(frozen=True)
class Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    type: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Sent:
    """Messages written and awaiting their confirms (see :meth:`ConfirmingPublisher.wait`)."""

    tags: list[int]
    message_ids: list[str]


class PublishFailed(RuntimeError):
    """Some messages were nacked, returned (unroutable) or not confirmed in time."""


class ConfirmingPublisher:
    """One channel in confirm mode. Not thread-safe: one per thread, like the channel."""

    def __init__(self, connection: amqp.Connection,
                 stopping: threading.Event | None = None) -> None:
        self.connection = connection
        self._stopping = stopping
        self.channel = connection.channel()
        self.channel.confirm_select()
        self._next_tag = 0  # delivery tags of a confirm channel count from 1
        self._pending: dict[int, str] = {}  # tag → message_id
        self._acked: set[int] = set()
        self._failed: set[int] = set()
        self._returned: set[str] = set()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)
        self._frames = FrameBatch(connection)  # the whole batch in one socket write
        self._deferred: list[Sent] = []

    # Broker callbacks (run inside drain_events) -------------------------------------------
    def _settle(self, tag: int, multiple: bool, into: set[int]) -> None:
        tags = [t for t in self._pending if t <= tag] if multiple else [tag]
        for t in tags:
            if self._pending.pop(t, None) is not None:
                into.add(t)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._acked)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._failed)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = message.properties.get("message_id")
        if message_id is not None:
            self._returned.add(message_id)

    # API ---------------------------------------------------------------------------------
    def send(self, messages: Sequence[Outgoing]) -> Sent:
        """Write every message (one socket write), without waiting for the confirms."""
        tags = []
        for m in messages:
            self._next_tag += 1
            self._pending[self._next_tag] = m.message_id
            tags.append(self._next_tag)
            timestamp = int((m.timestamp or datetime.now(UTC)).timestamp())
            if all(isinstance(v, str) for v in m.headers.values()):
                self._frames.publish_plain(
                    self.channel.channel_id, m.exchange, m.routing_key, m.body,
                    message_id=m.message_id, type_=m.type, timestamp=timestamp,
                    headers=dict(m.headers),
                )
                continue
            message = amqp.Message(
                m.body,
                content_type="application/json",
                delivery_mode=2,  # persistent: survives a broker restart
                message_id=m.message_id,
                type=m.type,
                timestamp=timestamp,
                application_headers=dict(m.headers),
            )
            # mandatory: an unroutable message comes back instead of vanishing
            self._frames.publish(self.channel, message, m.exchange, m.routing_key)
        self._frames.flush()
        return Sent(tags, [m.message_id for m in messages])

    def wait(self, sent: Sent, timeout: float = CONFIRM_TIMEOUT_SECONDS) -> list[bool]:
        """Wait for the confirms of ``sent``; True where the message is safely queued
        (acked and not returned). Raises the connection's errors (the caller reconnects)."""
        deadline = time.monotonic() + timeout
        cut_short = False
        while any(t in self._pending for t in sent.tags):
            now = time.monotonic()
            if not cut_short and self._stopping is not None and self._stopping.is_set():
                deadline, cut_short = min(deadline, now + STOPPING_CONFIRM_SECONDS), True
            left = deadline - now
            if left <= 0:
                break
            drain(self.connection, min(left, 0.5))  # a stop is seen within half a second
        results = []
        for t, message_id in zip(sent.tags, sent.message_ids, strict=True):
            self._pending.pop(t, None)  # a confirm that never came: not published
            results.append(t in self._acked and message_id not in self._returned)
            self._acked.discard(t)
            self._failed.discard(t)
        for message_id in sent.message_ids:
            self._returned.discard(message_id)
        return results

    def publish_many(
        self, messages: Sequence[Outgoing], timeout: float = CONFIRM_TIMEOUT_SECONDS
    ) -> list[bool]:
        """Publish every message, then wait for their confirms (pipelined)."""
        return self.wait(self.send(messages), timeout)

    def defer(self, messages: Sequence[Outgoing]) -> None:
        """Send now; the caller (a consumer loop) waits for these confirms later, before it
        acks what caused them (see :meth:`take_deferred`)."""
        if messages:
            self._deferred.append(self.send(messages))

    def take_deferred(self) -> list[Sent]:
        taken, self._deferred = self._deferred, []
        return taken

    def publish_all(self, messages: Sequence[Outgoing]) -> None:
        """All or error: raise :class:`PublishFailed` unless every message is queued."""
        if not messages:
            return
        results = self.publish_many(messages)
        if not all(results):
            failed = [m.message_id for m, ok in zip(messages, results, strict=True) if not ok]
            raise PublishFailed(f"not confirmed or unroutable: {failed}")


def new_message_id() -> str:
    return str(uuid.uuid4())
