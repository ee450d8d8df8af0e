"""Connections for the relay and the consumers (py-amqp).

py-amqp rather than pika's BlockingConnection: its channel reports publisher confirms as
events (``basic_ack`` / ``basic_nack`` / ``basic_return`` callbacks), so a whole batch is
published before waiting for the confirms (pika's blocking confirms wait after each
message: measured about ten times slower, see docs/messaging.md). It is also the
transport under kombu, installed anyway.

py-amqp does no I/O on its own: heartbeats are sent by :meth:`Connection.heartbeat_tick`,
which our loops call at least every second while they wait for deliveries. A handler that
blocks longer than the heartbeat interval would get its connection closed by the broker,
so handlers stay short (RELIABILITY.md, the silent-consumer failure of kombu#670).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import amqp
from amqp.exceptions import ConnectionError as AMQPConnectionError
from amqp.exceptions import RecoverableConnectionError

HEARTBEAT_SECONDS = 20

# What a broken or refused connection raises: the caller reconnects with backoff.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, broken pipe, socket.timeout while connecting
    AMQPConnectionError,  # ConnectionForced (broker stop_app), heartbeat misses, ...
    RecoverableConnectionError,
    amqp.exceptions.ChannelError,  # a channel closed under us: start over cleanly
)


def connect(amqp_url: str, name: str, heartbeat: int = HEARTBEAT_SECONDS) -> amqp.Connection:
    """An open connection to the broker named in the contract's ``AMQP_URL``."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(
        host=f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        heartbeat=heartbeat,
        connect_timeout=5,
        read_timeout=None,
        write_timeout=10,
        ssl=parts.scheme == "amqps",
        client_properties={"connection_name": name},
    )
    connection.connect()
    return connection


def drain(connection: amqp.Connection, timeout: float) -> bool:
    """Dispatch whatever arrives within ``timeout`` seconds; False if nothing came."""
    try:
        connection.drain_events(timeout=timeout)
    except TimeoutError:
        return False
    return True


def close_quietly(connection: amqp.Connection | None) -> None:
    if connection is None:
        return
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - already broken: nothing more to do
        try:
            connection.collect()
        except Exception:  # noqa: BLE001, S110
            pass
