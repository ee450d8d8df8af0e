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

import struct
from urllib.parse import unquote, urlsplit

import amqp
from amqp import spec
from amqp.exceptions import ConnectionError as AMQPConnectionError
from amqp.exceptions import RecoverableConnectionError
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from shared.messaging import broker_nodes

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
    _read_ahead(connection)
    return connection


READ_AHEAD_BYTES = 16384


def _read_ahead(connection: amqp.Connection) -> None:
    """Make py-amqp read the socket in chunks instead of exactly one frame part at a time.

    Its plain-TCP transport asks ``recv`` for exactly the bytes it needs next (a 7-byte
    frame header, then the payload): about nine system calls per delivered message. Asking
    for at least 16 KiB leaves the surplus in the transport's own read buffer, which it
    consumes first; the bytes and their order are unchanged. TLS transports are left alone.
    """
    transport = connection.transport
    sock = getattr(transport, "sock", None)
    if sock is None or getattr(transport, "_quick_recv", None) != sock.recv:
        return
    recv = sock.recv

    def recv_ahead(n: int) -> bytes:
        return recv(max(n, READ_AHEAD_BYTES))

    transport._quick_recv = recv_ahead


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


class FrameBatch:
    """Encode many AMQP methods, then send them in one socket write.

    py-amqp writes every method with its own ``sendall`` (and ``basic_publish`` first polls
    the socket for a ``connection.blocked``): two system calls per message, which was most
    of the relay's and the consumers' time on a busy 2-core machine. The bytes on the wire
    are the same; only the number of writes changes. Single-threaded use, like the
    connection itself.
    """

    def __init__(self, connection: amqp.Connection) -> None:
        self.connection = connection
        self._parts: list[bytes] = []
        self._write_frame = frame_writer(connection, self)

    def write(self, data: bytes | memoryview) -> None:  # the frame writer's "transport"
        self._parts.append(bytes(data))  # copy: the writer reuses its buffer

    def publish(self, channel: amqp.Channel, message: amqp.Message, exchange: str,
                routing_key: str, mandatory: bool = True) -> None:
        args = dumps("Bssbb", (0, exchange, routing_key, mandatory, False))
        self._write_frame(1, channel.channel_id, spec.Basic.Publish, args, message)

    def publish_plain(
        self, channel_id: int, exchange: str, routing_key: str, body: bytes, *,
        message_id: str, type_: str | None, timestamp: int, headers: dict[str, str],
    ) -> None:
        """Encode a persistent JSON message whose headers are all strings, by hand.

        The same frames py-amqp would write (AMQP 0-9-1 §4.2 and §4.2.6: basic.publish
        with mandatory, a content header, body frames), at a fraction of the CPU: the
        relay spent most of its time in py-amqp's generic property serialisation. Any
        other message goes through :meth:`publish`.
        """
        method = (
            _PUBLISH_METHOD + _shortstr(exchange) + _shortstr(routing_key) + b"\x01"  # mandatory
        )
        table = b"".join(_shortstr(k) + b"S" + _longstr(v.encode()) for k, v in headers.items())
        flags = 0x8000 | 0x2000 | 0x1000 | 0x0080 | 0x0040  # content type, headers, mode, id, ts
        props = [_shortstr("application/json"), struct.pack(">I", len(table)), table, b"\x02",
                 _shortstr(message_id), struct.pack(">Q", timestamp)]
        if type_ is not None:
            flags |= 0x0020
            props.append(_shortstr(type_))
        header = struct.pack(">HHQH", 60, 0, len(body), flags) + b"".join(props)
        frames = [_frame(1, channel_id, method), _frame(2, channel_id, header)]
        chunk = self.connection.frame_max - 8
        frames.extend(_frame(3, channel_id, body[i:i + chunk]) for i in range(0, len(body), chunk))
        self._parts.append(b"".join(frames))
        self.connection.bytes_sent += 1  # py-amqp's heartbeat bookkeeping counts writes

    def ack(self, channel: amqp.Channel, delivery_tag: int) -> None:
        self._write_frame(1, channel.channel_id, spec.Basic.Ack,
                          dumps("Lb", (delivery_tag, False)), None)

    def flush(self) -> None:
        if self._parts:
            payload = b"".join(self._parts)
            self._parts.clear()
            self.connection.transport.write(payload)


_PUBLISH_METHOD = struct.pack(">HHH", 60, 40, 0)  # basic.publish, reserved-1


def _shortstr(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"shortstr too long: {value[:40]}…")
    return bytes((len(data),)) + data


def _longstr(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _frame(kind: int, channel_id: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel_id, len(payload)) + payload + b"\xce"
