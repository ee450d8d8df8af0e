"""The parking queue ``<ns>.dead-letter`` as the console sees it: read without harm, take
out only what was safely put back elsewhere.

Reading relies on two broker guarantees of a CLASSIC queue (why the parking queue is one,
see ``topology.py``): a message fetched with ``basic.get`` and no ack stays owned by the
queue until the channel acks it, and closing the channel (or ``basic.nack`` with requeue)
puts every unacked message back at its original position, with no delivery attempt spent
(a quorum queue would count one, and could drop the message at its delivery limit).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

from shared.messaging.dead_letters import DeadLetter
from shared.messaging.names import Names
from shared.messaging.topology import connect
from shared.settings import Settings

REPLAYED = "replayed"


@dataclass(frozen=True)
class Parked:
    """A dead letter held unacked by this console: ``tag`` is its delivery on the channel."""

    tag: int
    letter: DeadLetter


@dataclass
class Held:
    """Dead letters fetched without ack on one channel. Whatever is neither acked nor
    released goes back, in place, when the channel closes (even if this process dies)."""

    channel: BlockingChannel
    items: list[Parked] = field(default_factory=list)

    def ack(self, parked: Parked) -> None:
        """Drop it from the parking queue for good (after a confirmed replay, or a purge)."""
        self.channel.basic_ack(parked.tag)

    def release(self, parked: Parked) -> None:
        """Put it back now, at its place in the queue, instead of holding it until the end.
        Safe because this channel fetches nothing more after selection."""
        self.channel.basic_nack(parked.tag, requeue=True)


class ParkingQueue:
    """One connection to the broker, for one namespace's parking queue."""

    def __init__(self, connection: pika.BlockingConnection, names: Names) -> None:
        self.connection = connection
        self.names = names
        self._confirming: BlockingChannel | None = None
        self._exchange_checks: dict[str, str | None] = {}

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator[ParkingQueue]:
        connection = connect(settings, name="exchange-tokens dlq")
        try:
            yield cls(connection, Names(settings.broker_namespace))
        finally:
            if connection.is_open:
                connection.close()

    @property
    def queue(self) -> str:
        return self.names.dead_letter_queue

    def depth(self) -> int:
        """Messages ready in the parking queue (not counting any another console holds)."""
        channel = self.connection.channel()
        try:
            return int(channel.queue_declare(self.queue, passive=True).method.message_count)
        finally:
            if channel.is_open:  # a 404 (no such queue) has closed it already
                channel.close()

    @contextmanager
    def hold(self, limit: int | None = None) -> Iterator[Held]:
        """Fetch, without ack, the messages present now (at most ``limit``), oldest first.

        Bounded by the depth at the start, so a replayed message that fails again and is
        parked anew (behind, FIFO) is never fetched twice by one command.
        """
        depth = self.depth()
        count = depth if limit is None else min(depth, limit)
        channel = self.connection.channel()
        held = Held(channel)
        try:
            for _ in range(count):
                method, properties, body = channel.basic_get(self.queue, auto_ack=False)
                if method is None:  # another console holds the rest
                    break
                held.items.append(Parked(method.delivery_tag, DeadLetter.read(body, properties)))
            yield held
        finally:
            if channel.is_open:
                channel.close()  # requeues, in place, everything not acked

    def peek(self, limit: int | None = None) -> list[DeadLetter]:
        """Read up to ``limit`` dead letters and put them all back at once."""
        with self.hold(limit) as held:
            return [p.letter for p in held.items]

    # Republishing ------------------------------------------------------------------------
    def _confirm_channel(self) -> BlockingChannel:
        if self._confirming is None or not self._confirming.is_open:
            self._confirming = self.connection.channel()
            # Confirms: basic_publish returns only once the broker has the message
            # (routed to a durable queue and, for a quorum queue, replicated), and raises
            # if it was returned (mandatory, unroutable) or nacked.
            self._confirming.confirm_delivery()
        return self._confirming

    def republish(self, letter: DeadLetter) -> str:
        """Publish the dead letter again to its original exchange and routing key.

        Returns ``"replayed"`` once the broker confirmed it, or why not: the caller acks
        the dead letter only on ``"replayed"``, so a refusal or a crash in between leaves it
        parked (at worst a duplicate, which the idempotent consumers absorb; never a loss).
        """
        exchange = letter.original_exchange
        routing_key = letter.original_routing_key
        if exchange is None or routing_key is None:
            return "not replayable: no original exchange or routing key in its headers"
        channel = self._confirm_channel()
        try:
            channel.basic_publish(
                exchange, routing_key, letter.body, letter.replay_properties(), mandatory=True
            )
        except UnroutableError:
            return f"unroutable: no queue bound to {exchange!r} for {routing_key!r}"
        except NackError:
            return "refused by the broker (nack)"
        except ChannelClosedByBroker as exc:  # e.g. 404: the exchange no longer exists
            self._confirming = None
            return f"refused by the broker ({exc.reply_code} {exc.reply_text})"
        return REPLAYED

    def exchange_problem(self, letter: DeadLetter) -> str | None:
        """Why a replay could not be published, checked without publishing (dry run)."""
        exchange = letter.original_exchange
        if exchange is None or letter.original_routing_key is None:
            return "no original exchange or routing key in its headers"
        if exchange == "":  # the default exchange always exists
            return None
        if exchange not in self._exchange_checks:  # one passive declare per exchange
            self._exchange_checks[exchange] = self._missing(exchange)
        return self._exchange_checks[exchange]

    def _missing(self, exchange: str) -> str | None:
        channel = self.connection.channel()
        try:
            channel.exchange_declare(exchange, passive=True)
        except ChannelClosedByBroker as exc:  # 404 closes the channel, not the connection
            return f"exchange {exchange!r} does not exist ({exc.reply_code})"
        channel.close()
        return None
