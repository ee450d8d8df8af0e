"""The broker topology, declared idempotently by this one module.

::

    outbox relay ──► <ns>.events (topic, routing key = event type)
                       ├─ TokenIssued   ─► <ns>.schedule-expiry   (worker: schedule the timer)
                       ├─ TokenRedeemed ─► <ns>.exchange-requests (worker: record the request)
                       └─ TokenCancelled,
                          TokenExpired  ─► <ns>.audit             (worker: log the facts)

    timers and retries ──► <ns>.delay.19 ─► … ─► <ns>.delay.0 ─► <ns>.delayed (topic)
                       binary delay levels: level k is a queue whose fixed TTL is 2^k units
                       of 100 ms; the routing key "b19.….b0.<consumer>" says at which levels
                       the message waits, so any delay takes at most 20 hops and no message
                       ever waits behind one with a longer TTL (per-queue TTLs are static,
                       so messages expire strictly in arrival order: no head-of-line block).
                       <ns>.delayed routes "#.<consumer>" to that consumer's queue
                       (<ns>.expire for timers, any consumer queue for retries).

    a new token's timer ──► <ns>.delay.lifetime.<units> (TTL = TOKEN_TTL_SECONDS) ─► <ns>.delayed
                       one hop instead of one per set bit: the common timer (due a whole
                       lifetime from now) waits in a queue whose TTL is that lifetime.
                       Declared by the scheduler as it uses it. No x-expires: RabbitMQ
                       3.10 counts neither publishes nor re-declarations of a quorum queue
                       as use, and removed a busy one (measured), messages and all.

    poison / exhausted ─► <ns>.dead-letter (fanout) ─► <ns>.dead-letter (parking queue)

Queue arguments are a schema: RabbitMQ refuses to redeclare a queue with other arguments,
so changing any of them needs new names and a migration plan (see docs/messaging.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pika
from pika.exceptions import ChannelClosedByBroker

from shared.messaging import broker_nodes, quorum
from shared.messaging.names import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

DELAY_UNIT_MS = 100  # resolution of timers: a delay is rounded UP to this, so never early
DELAY_LEVELS = 20  # 2^20 units of 100 ms ≈ 29 h: covers TOKEN_TTL_SECONDS up to 86,400

EXPIRE_CONSUMER = "expire"

# Consumer name → routing keys bound on the events exchange. The expire consumer is fed
# only by the delay chain: the fact "TokenExpired (restored)" must not re-trigger it.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "schedule-expiry": ("TokenIssued",),
    EXPIRE_CONSUMER: (),
    "exchange-requests": ("TokenRedeemed",),
    # The facts no other consumer acts on: logged, and the relay's mandatory publish finds
    # a route. Not "#": every TokenIssued would cost the broker a second enqueue, and the
    # broker is the bottleneck of a burst of expiries (measured: docs/messaging.md).
    "audit": ("TokenCancelled", "TokenExpired"),
}

# Our consumers count attempts in our own header (5, then dead-letter); the broker's
# delivery limit only catches a message that crashes its worker again and again before any
# code can count. It is explicit because RabbitMQ 4.x defaults it to 20 and 3.10 to none.
DELIVERY_LIMIT = 10


def quorum_args(dead_letter_exchange: str, **extra: object) -> dict[str, object]:
    """Arguments of every quorum queue that must not lose a message when it dead-letters."""
    return {
        "x-queue-type": "quorum",  # replicated, durable, poison-aware (contract)
        "x-dead-letter-exchange": dead_letter_exchange,
        # At-least-once dead-lettering keeps the message in the source until the target
        # confirmed it (quorum queues, 3.10+). It silently degrades to at-most-once unless
        # overflow is reject-publish, hence both arguments together.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        **extra,
    }


# A timer whose delay rounds to the lifetime, or one unit less (scheduled up to 200 ms
# after its token was issued), takes the lifetime queue: at most one more unit late than
# the binary chain would make it, for one hop instead of three to six.
LIFETIME_SLACK_UNITS = 1


@dataclass(frozen=True)
class Topology:
    names: Names
    token_ttl_seconds: int = 180
    quorum_group_size: int | None = None  # None: the broker's own (single node)

    @classmethod
    def for_settings(cls, settings: Settings) -> Topology:
        return cls(Names(settings.broker_namespace), settings.token_ttl_seconds,
                   quorum.initial_group_size(settings.amqp_url,
                                             settings.quorum_initial_group_size))

    def quorum_args(self, dead_letter_exchange: str, **extra: object) -> dict[str, object]:
        return quorum_args(dead_letter_exchange,
                           **quorum.group_size_args(self.quorum_group_size), **extra)

    # The lifetime queue -------------------------------------------------------------------
    @property
    def lifetime_units(self) -> int:
        return self.token_ttl_seconds * 1000 // DELAY_UNIT_MS

    @property
    def lifetime_queue(self) -> str:
        """Named by its TTL: RabbitMQ refuses to redeclare a queue with another TTL, and
        tokens of a previous TOKEN_TTL_SECONDS still wait in theirs after a change."""
        return f"{self.names.namespace}.delay.lifetime.{self.lifetime_units}"

    def lifetime_queue_arguments(self) -> dict[str, object]:
        return self.quorum_args(
            self.delayed_exchange,
            **{
                "x-message-ttl": self.lifetime_units * DELAY_UNIT_MS,
                # Out of the queue straight to the expire consumer: the delayed exchange
                # routes "#.expire" to <ns>.expire.
                "x-dead-letter-routing-key": f"lifetime.{EXPIRE_CONSUMER}",
            },
        )

    # Delay chain -------------------------------------------------------------------------
    def delay_exchange(self, level: int) -> str:
        return f"{self.names.namespace}.delay.{level}"

    def delay_queue(self, level: int) -> str:
        return f"{self.names.namespace}.delay.{level}"

    @property
    def delayed_exchange(self) -> str:
        """Where every message leaves the delay chain, routed to its consumer's queue."""
        return f"{self.names.namespace}.delayed"

    def consumer_queues(self) -> list[str]:
        return [self.names.consumer_queue(c) for c in CONSUMERS]

    def exchanges(self) -> list[str]:
        return [
            self.names.events_exchange,
            self.names.dead_letter_exchange,
            self.delayed_exchange,
            *(self.delay_exchange(k) for k in range(DELAY_LEVELS)),
        ]

    def queues(self) -> list[str]:
        return [
            *self.consumer_queues(),
            self.names.dead_letter_queue,
            *(self.delay_queue(k) for k in range(DELAY_LEVELS)),
            self.lifetime_queue,  # this lifetime's (docs/messaging.md: after a change)
        ]


def delay_units(delay_ms: float) -> int:
    """Whole delay units, rounded up (a timer may fire a little late, never early)."""
    if delay_ms <= 0:
        return 0
    return min((1 << DELAY_LEVELS) - 1, -(-int(delay_ms) // DELAY_UNIT_MS))


def delay_routing_key(delay_ms: float, consumer: str) -> str:
    """``"b19.b18.….b0.<consumer>"``: bit k set = wait 2^k units at level k."""
    units = delay_units(delay_ms)
    bits = ".".join("1" if units >> k & 1 else "0" for k in range(DELAY_LEVELS - 1, -1, -1))
    return f"{bits}.{consumer}"


def declare_on_channel(channel: pika.adapters.blocking_connection.BlockingChannel,
                       topo: Topology) -> None:
    """Declare every exchange, queue and binding (idempotent)."""
    names = topo.names
    dlx = names.dead_letter_exchange
    channel.exchange_declare(names.events_exchange, "topic", durable=True)
    channel.exchange_declare(dlx, "fanout", durable=True)
    channel.exchange_declare(topo.delayed_exchange, "topic", durable=True)
    # The parking queue: no TTL (nothing evaporates before ops look) and a classic queue on
    # purpose: a quorum queue counts every get-and-requeue as a delivery attempt (RabbitMQ
    # 3.10 even drops a message on its first requeue with x-delivery-limit=-1), so merely
    # listing dead letters could drop them. Classic queues requeue for free.
    channel.queue_declare(
        names.dead_letter_queue, durable=True, arguments={"x-queue-type": "classic"}
    )
    channel.queue_bind(names.dead_letter_queue, dlx, routing_key="#")

    for consumer, keys in CONSUMERS.items():
        queue = names.consumer_queue(consumer)
        channel.queue_declare(
            queue, durable=True, arguments=topo.quorum_args(dlx, **{"x-delivery-limit": DELIVERY_LIMIT})
        )
        for key in keys:
            channel.queue_bind(queue, names.events_exchange, routing_key=key)
        # Timers and retries come back to exactly this queue through the delay chain.
        channel.queue_bind(queue, topo.delayed_exchange, routing_key=f"#.{consumer}")

    for level in range(DELAY_LEVELS):
        channel.exchange_declare(topo.delay_exchange(level), "topic", durable=True)
    # Level k: exchange k sends bit-k=1 messages into queue k (TTL 2^k units), bit-k=0
    # messages straight on to exchange k-1; queue k dead-letters into exchange k-1.
    for level in range(DELAY_LEVELS - 1, -1, -1):
        exchange = topo.delay_exchange(level)
        following = topo.delay_exchange(level - 1) if level else topo.delayed_exchange
        prefix = "*." * (DELAY_LEVELS - 1 - level)
        channel.queue_declare(
            topo.delay_queue(level),
            durable=True,
            arguments=topo.quorum_args(following, **{"x-message-ttl": DELAY_UNIT_MS << level}),
        )
        channel.queue_bind(topo.delay_queue(level), exchange, routing_key=f"{prefix}1.#")
        channel.exchange_bind(destination=following, source=exchange, routing_key=f"{prefix}0.#")


def connect(settings: Settings, **kwargs: object) -> pika.BlockingConnection:
    name = str(kwargs.get("name", "exchange-tokens"))
    return broker_nodes.connect_first(
        settings.amqp_url, name, lambda url: _connect_node(url, name, kwargs),
        errors=(pika.exceptions.AMQPError, OSError))


def _connect_node(url: str, name: str, kwargs: dict[str, object]) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.connection_attempts = int(kwargs.get("attempts", 1))  # type: ignore[call-overload]
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    params.heartbeat = 30
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def declare_topology(settings: Settings) -> Topology:
    topo = Topology.for_settings(settings)
    connection = connect(settings, name="exchange-tokens topology")
    try:
        declare_on_channel(connection.channel(), topo)
    finally:
        connection.close()
    log.info("broker topology declared", extra={"namespace": settings.broker_namespace})
    return topo


def delete_topology(settings: Settings) -> None:
    """Delete every exchange and queue of this namespace (test runs clean up after
    themselves: leftover quorum queues pile up and can wedge a small broker)."""
    topo = Topology.for_settings(settings)
    connection = connect(settings, name="exchange-tokens cleanup")
    try:
        channel = connection.channel()
        for queue in topo.queues():
            try:
                channel.queue_delete(queue)
            except ChannelClosedByBroker:
                channel = connection.channel()
        for exchange in topo.exchanges():
            try:
                channel.exchange_delete(exchange)
            except ChannelClosedByBroker:
                channel = connection.channel()
    finally:
        connection.close()
