"""Connections for the relay and the consumers (py-amqp).

py-amqp rather than pika's BlockingConnection: its channel reports publisher confirms as
events (``basic_ack`` / ``basic_nack`` / ``basic_return`` callbacks), so a whole batch is
published before waiting for the confirms (pika's blocking confirms wait after each
message: measured about ten times slower, see docs/messaging.md). It is also the
transport under kombu, installed anyway.

py-amqp does no I/O on its own: heartbeats are sent by :meth:`Connection.heartbeat_tick`,
which our loops call at least every second while they wait for deliveries. A handler that
blocks longer than the heartbeat interval would get its connection closed by the broker,
so handlers stay short (the silent-consumer failure of kombu issue #670).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import amqp
from amqp.exceptions import ConnectionError as AMQPConnectionError
from amqp.exceptions import RecoverableConnectionError

from shared.messaging import broker_nodes
from shared.messaging.amqp_speedups import read_ahead

HEARTBEAT_SECONDS = 20
# How long a synchronous method (queue_declare, basic_cancel, channel open...) waits for
# the broker's reply before the connection counts as broken (the caller reconnects with
# backoff). A broker answers in milliseconds; one that hangs (stopped, or behind a stalled
# network that still acknowledges) answered nothing and held the role, and the worker's
# stop, for ever: py-amqp's default read timeout is none. Timed reads (drain) keep theirs.
SYNC_REPLY_SECONDS = 5.0

# What a broken or refused connection raises: the caller reconnects with backoff.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, broken pipe, socket.timeout while connecting
    AMQPConnectionError,  # ConnectionForced (broker stop_app), heartbeat misses, ...
    RecoverableConnectionError,
    amqp.exceptions.ChannelError,  # a channel closed under us: start over cleanly
)


def connect(amqp_url: str, name: str, heartbeat: int = HEARTBEAT_SECONDS) -> amqp.Connection:
    """An open connection to the broker named in the contract's ``AMQP_URL``: the first
    node that answers when it lists several (shared/messaging/broker_nodes.py)."""
    return broker_nodes.connect_first(
        amqp_url, name, lambda url: _connect_node(url, name, heartbeat), CONNECTION_ERRORS)


def _connect_node(amqp_url: str, name: str, heartbeat: int) -> amqp.Connection:
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(
        host=f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        heartbeat=heartbeat,
        connect_timeout=5,
        read_timeout=SYNC_REPLY_SECONDS,
        write_timeout=10,
        ssl=parts.scheme == "amqps",
        client_properties={"connection_name": name},
    )
    connection.connect()
    read_ahead(connection)  # a py-amqp internal: amqp_speedups says which and why
    return connection


def drain(connection: amqp.Connection, timeout: float) -> bool:
    """Dispatch whatever arrives within ``timeout`` seconds; False if nothing came."""
    try:
        connection.drain_events(timeout=timeout)
    except TimeoutError:
        return False
    return True


# How long each reply may take once a role is stopping (its cancel, its close): the
# worker's stop deadline (workers/worker.py) must hold even when the broker hangs.
STOPPING_REPLY_SECONDS = 2.0


def shorten_waits(connection: amqp.Connection | None,
                  seconds: float = STOPPING_REPLY_SECONDS) -> None:
    """From now on, a synchronous method of ``connection`` waits at most ``seconds`` for
    its reply (the socket's read timeout, which py-amqp's sync waits use)."""
    if connection is None or not connection.connected:  # nothing to wait on
        return
    sock = getattr(connection.transport, "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def close_quietly(connection: amqp.Connection | None) -> None:
    """Close, waiting at most STOPPING_REPLY_SECONDS for the broker; never raises."""
    if connection is None:
        return
    try:
        shorten_waits(connection)
        connection.close()
    except Exception:  # noqa: BLE001 - already broken: nothing more to do
        try:
            connection.collect()
        except Exception:  # noqa: BLE001, S110
            pass
