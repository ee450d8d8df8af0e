"""Speed patches of py-amqp's internals, in one place (the worker's process).

Two of py-amqp's internals are used here, each for a measured saving on the relay's and
the consumers' hot paths, with the bytes on the wire unchanged:

* :func:`read_ahead` replaces the plain-TCP transport's ``_quick_recv`` (the function its
  ``_read`` calls for every frame part) with one that reads at least 16 KiB at a time.
* :class:`FrameBatch` drives ``amqp.method_framing.frame_writer`` with itself as the
  "transport", to collect many methods into one socket write, and encodes the common
  publish by hand; it bumps ``Connection.bytes_sent``, which the heartbeat check reads.

tests/unit/messaging/test_amqp_speedups.py checks the bytes against py-amqp's own
encoder and fails when the py-amqp code these rely on changes: re-check them then.
"""

from __future__ import annotations

import struct

import amqp
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

READ_AHEAD_BYTES = 16384


def read_ahead(connection: amqp.Connection) -> None:
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
