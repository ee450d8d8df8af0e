"""How a dead letter is read from its headers (pure: no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from pika.spec import BasicProperties

from shared.messaging.dead_letters import DeadLetter, derive_id
from shared.messaging.names import (
    H_ATTEMPTS,
    H_EXCEPTION,
    H_ORIGINAL_EXCHANGE,
    H_ORIGINAL_ROUTING_KEY,
    H_REASON,
    H_REPLAYED,
    H_STACK,
)

BODY = b'{"type": "TokenRedeemed", "token_id": "t-1", "user_id": "u-1"}'
DEATH = {
    "count": 1, "reason": "delivery_limit", "queue": "ns.exchange-requests",
    "time": datetime(2026, 11, 24, 3, 0, tzinfo=UTC), "exchange": "ns.events",
    "routing-keys": ["TokenRedeemed"],
}


def letter(headers, message_id=None, body=BODY):
    return DeadLetter.read(body, BasicProperties(headers=headers, message_id=message_id))


def test_the_message_id_is_the_id_when_there_is_one():
    assert letter({H_REASON: "poison"}, message_id="evt-1").id == "evt-1"


def test_without_message_id_the_id_is_a_hash_of_body_and_headers_in_any_order():
    a = letter({"x-death": [DEATH], "x-first-death-queue": "q", "x-first-death-reason": "r"})
    b = letter({"x-first-death-reason": "r", "x-first-death-queue": "q", "x-death": [DEATH]})
    other_body = letter({"x-death": [DEATH], "x-first-death-queue": "q",
                         "x-first-death-reason": "r"}, body=BODY + b" ")
    assert a.id == b.id and a.id.startswith("dl-")
    assert other_body.id != a.id
    assert derive_id(BODY, None) == derive_id(BODY, {})


def test_a_broker_dead_letter_is_read_from_its_latest_death():
    delay_death = {**DEATH, "reason": "expired", "queue": "ns.delay.0", "exchange": "ns.delay.0"}
    dl = letter({"x-death": [DEATH, delay_death], "x-first-death-exchange": "ns.delay.0",
                 "x-first-death-queue": "ns.delay.0", "x-first-death-reason": "expired"})
    assert dl.broker_dead_lettered
    assert (dl.reason, dl.original_exchange, dl.original_routing_key, dl.original_queue) == (
        "delivery_limit", "ns.events", "TokenRedeemed", "ns.exchange-requests")
    assert dl.dead_lettered_at == "2026-11-24T03:00:00Z"
    assert dl.attempts is None  # deaths are not deliveries
    assert dl.exception_type == "(broker: delivery_limit)"


def test_x_first_death_headers_alone_are_enough():
    dl = letter({"x-first-death-exchange": "ns.events", "x-first-death-queue": "ns.audit",
                 "x-first-death-reason": "rejected"})
    assert (dl.reason, dl.original_exchange, dl.original_routing_key) == (
        "rejected", "ns.events", "TokenRedeemed")  # routed by its type


def test_our_headers_win_and_the_exception_type_groups_failures():
    dl = letter({H_REASON: "exhausted", H_EXCEPTION: "OperationalError: server closed",
                 H_ORIGINAL_EXCHANGE: "ns.delayed", H_ORIGINAL_ROUTING_KEY: "0.expire",
                 H_ATTEMPTS: 5, "x-death": [DEATH]})
    assert not dl.broker_dead_lettered
    assert (dl.reason, dl.attempts, dl.exception_type) == ("exhausted", 5, "OperationalError")
    assert (dl.original_exchange, dl.original_routing_key) == ("ns.delayed", "0.expire")


def test_a_replay_is_the_original_message_with_fresh_counters():
    dl = letter({H_REASON: "exhausted", H_EXCEPTION: "E: x", H_STACK: "...", H_ATTEMPTS: 5,
                 H_REPLAYED: 2, "x-death": [DEATH], "x-delivery-count": 11,
                 "x-request-id": "req-1"}, message_id="evt-1")
    props = dl.replay_properties()
    assert props.message_id == "evt-1" and props.delivery_mode == 2
    assert props.headers == {"x-request-id": "req-1", H_ATTEMPTS: 0, H_REPLAYED: 3}


def test_a_body_that_is_not_json_is_still_a_dead_letter():
    dl = letter({H_REASON: "poison"}, body=b"\xff\xfe")
    assert dl.event is None and dl.type is None and "not JSON" in (dl.parse_error or "")
    assert dl.details()["body"] == "\ufffd\ufffd"
