"""shared/messaging/amqp_speedups.py relies on py-amqp internals: fail when they change.

The bytes FrameBatch writes are compared with py-amqp's own encoder in
test_frames_and_rules.py; here, the internals themselves and the read-ahead.
"""

from __future__ import annotations

import socket

import amqp.channel
import amqp.connection
import amqp.method_framing
import amqp.transport

from shared.messaging.amqp_speedups import READ_AHEAD_BYTES, read_ahead
from tests.support.fingerprints import changed

RELIED_ON = {
    # read_ahead swaps _quick_recv, which _setup_transport sets and _read calls.
    "TCPTransport._setup_transport": (amqp.transport.TCPTransport._setup_transport,
                                      "4636299f8633e460"),
    "TCPTransport._read": (amqp.transport.TCPTransport._read, "e70c3702dc01e3b7"),
    # FrameBatch drives frame_writer with its own write(), mimics basic_publish's
    # arguments, and counts its writes in bytes_sent for heartbeat_tick.
    "method_framing.frame_writer": (amqp.method_framing.frame_writer, "aeb6ed1af3635509"),
    "Channel._basic_publish": (amqp.channel.Channel._basic_publish, "435fd18a6c885ecc"),
    "Connection.heartbeat_tick": (amqp.connection.Connection.heartbeat_tick,
                                  "6e0e042ed2481241"),
}


def test_the_py_amqp_code_the_speedups_rely_on_is_unchanged() -> None:
    assert not changed(RELIED_ON), (
        "py-amqp changed under shared/messaging/amqp_speedups.py: re-check it, then "
        f"record the new fingerprints: {changed(RELIED_ON)}")


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._quick_recv = sock.recv


class _Connection:
    def __init__(self, transport: object) -> None:
        self.transport = transport


def test_read_ahead_asks_for_a_chunk_and_keeps_the_bytes_and_their_order() -> None:
    a, b = socket.socketpair()
    try:
        transport = _Transport(b)
        read_ahead(_Connection(transport))  # type: ignore[arg-type]
        assert transport._quick_recv != b.recv  # replaced
        a.sendall(b"0123456789" * 3)
        got = transport._quick_recv(7)  # py-amqp asks for a 7-byte frame header...
        assert got == b"0123456789" * 3  # ...and gets what is there, up to the chunk
        assert READ_AHEAD_BYTES >= 4096
    finally:
        a.close()
        b.close()


def test_read_ahead_leaves_a_transport_it_does_not_know_alone() -> None:
    class Tls:
        sock = None
        _quick_recv = None

    transport = Tls()
    read_ahead(_Connection(transport))  # type: ignore[arg-type]
    assert transport._quick_recv is None
