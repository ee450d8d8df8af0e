"""Pure parts of the messaging layer: hand-encoded frames, delay targets, failure rules."""

from __future__ import annotations

from types import SimpleNamespace

import amqp
import pytest

from shared.messaging import names as h
from shared.messaging.amqp_speedups import FrameBatch
from shared.messaging.delays import delay_target
from shared.messaging.failures import (
    RETRY_DELAYS_SECONDS,
    attempts_of,
    clean_headers,
    next_delay,
    original_route,
)
from shared.messaging.names import Names
from shared.messaging.topology import Topology, delay_routing_key

TOPO = Topology(Names("ns"))


def frames_of(write) -> bytes:
    """Run ``write(batch, channel)`` against a stand-in py-amqp connection; the bytes."""
    sent: list[bytes] = []
    connection = SimpleNamespace(frame_max=4096, bytes_sent=0,
                                 transport=SimpleNamespace(write=sent.append))
    batch = FrameBatch(connection)  # type: ignore[arg-type]
    write(batch, SimpleNamespace(channel_id=7))
    batch.flush()
    return b"".join(sent)


@pytest.mark.parametrize("body", [b'{"a": 1}', b"", b"x" * 10_000])
@pytest.mark.parametrize("type_", ["TokenIssued", None])
def test_hand_encoded_publish_is_byte_for_byte_what_py_amqp_writes(body, type_):
    headers = {"x-request-id": "req-1", "x-causation-id": "é-ü"}
    fields = dict(message_id="m-1", timestamp=1_700_000_000)

    def by_py_amqp(batch, channel):
        message = amqp.Message(body, content_type="application/json", delivery_mode=2,
                               type=type_, application_headers=headers, **fields)
        batch.publish(channel, message, "ns.events", "TokenIssued")

    def by_hand(batch, channel):
        batch.publish_plain(channel.channel_id, "ns.events", "TokenIssued", body,
                            type_=type_, headers=headers, **fields)

    assert frames_of(by_hand) == frames_of(by_py_amqp)


def test_a_timer_enters_the_chain_at_its_highest_level():
    assert delay_target(TOPO, 100, "expire") == ("ns.delay.0", delay_routing_key(100, "expire"))
    assert delay_target(TOPO, 10_000, "expire")[0] == "ns.delay.6"  # 100 units = 64 + 32 + 4
    assert delay_target(TOPO, 180_000, "expire")[0] == "ns.delay.10"  # 1,800 units
    assert delay_target(TOPO, 0, "expire") == ("ns.delayed", delay_routing_key(0, "expire"))
    assert delay_target(TOPO, -5, "expire")[0] == "ns.delayed"  # late: at once


def test_replays_go_back_through_the_normal_path_or_straight_to_the_timer_consumer():
    events = "ns.events"
    # delivered from the events exchange: that exchange and routing key
    assert original_route(TOPO, "schedule-expiry", events, "TokenIssued", {},
                          "TokenIssued") == (events, "TokenIssued")
    # a retry through the delay chain keeps the route of its first failure
    kept = {h.H_ORIGINAL_EXCHANGE: events, h.H_ORIGINAL_ROUTING_KEY: "TokenRedeemed"}
    assert original_route(TOPO, "exchange-requests", "ns.delayed", "0.1.exchange-requests",
                          kept, "TokenRedeemed") == (events, "TokenRedeemed")
    # an event this consumer receives from the events exchange, without headers
    assert original_route(TOPO, "audit", "ns.delayed", "x.audit", {},
                          "TokenCancelled") == (events, "TokenCancelled")
    # a timer: the delayed exchange with the zero-delay key of its consumer
    assert original_route(TOPO, "expire", "ns.delayed", "1.0.expire", {}, "TokenExpired") == (
        "ns.delayed", delay_routing_key(0, "expire"))


def test_attempts_backoff_and_broker_headers():
    assert [next_delay(n, RETRY_DELAYS_SECONDS) for n in (1, 2, 3, 4)] == [1, 5, 30, 120]
    assert next_delay(9, (0.2,)) == 0.2
    assert attempts_of({h.H_ATTEMPTS: 3}) == 3
    assert attempts_of({h.H_ATTEMPTS: "garbage"}) == 0
    assert attempts_of({}) == 0
    assert clean_headers({"x-death": [], "x-first-death-queue": "q", "x-request-id": "r"}) == {
        "x-request-id": "r"}
