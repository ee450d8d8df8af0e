"""The lifetime queue: a new token's timer, due one lifetime from now, waits in a queue
whose TTL is that lifetime (one hop); any other delay takes the binary chain."""

from __future__ import annotations

import pytest

from shared.messaging.delays import delay_target, expiry_target
from shared.messaging.names import Names
from shared.messaging.topology import DELAY_UNIT_MS, Topology
from workers.schedule_expiry import LIFETIME_REDECLARE_SECONDS, ScheduleExpiry

TOPO = Topology(Names("ns"), token_ttl_seconds=180)


@pytest.mark.parametrize("ms", [180_000, 179_950, 179_901, 179_900, 179_801])
def test_a_timer_due_about_one_lifetime_from_now_takes_the_lifetime_queue(ms):
    # Rounded up to 1800 or 1799 units: at most one unit later than the chain would be.
    assert expiry_target(TOPO, ms) == ("", "ns.delay.lifetime.1800")


@pytest.mark.parametrize("ms", [179_800, 90_000, 1_000, 180_001, 3_600_000])
def test_any_other_delay_takes_the_binary_chain(ms):
    assert expiry_target(TOPO, ms) == delay_target(TOPO, ms, "expire")


def test_the_lifetime_queue_dead_letters_to_the_expire_consumer_and_never_expires():
    args = TOPO.lifetime_queue_arguments()
    assert args["x-queue-type"] == "quorum"
    assert args["x-message-ttl"] == 1800 * DELAY_UNIT_MS
    assert args["x-dead-letter-exchange"] == "ns.delayed"  # routes "#.expire"
    assert args["x-dead-letter-routing-key"] == "lifetime.expire"
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert args["x-overflow"] == "reject-publish"
    # RabbitMQ 3.10 removes a quorum queue x-expires after its creation however busy it is
    # (neither publishes nor re-declarations count as use): it would take its timers along.
    assert "x-expires" not in args
    assert "ns.delay.lifetime.1800" in TOPO.queues()  # deleted with the namespace


def test_another_lifetime_is_another_queue():
    assert Topology(Names("ns"), token_ttl_seconds=3).lifetime_queue == "ns.delay.lifetime.30"


class FakeChannel:
    def __init__(self) -> None:
        self.declared: list[tuple[str, dict]] = []

    def queue_declare(self, queue: str, durable: bool, auto_delete: bool, arguments: dict):
        assert durable and not auto_delete
        self.declared.append((queue, arguments))


class FakePublisher:
    def __init__(self) -> None:
        self.channel = FakeChannel()


def test_the_scheduler_declares_the_queue_before_first_use_then_every_minute():
    now = [1000.0]
    scheduler = ScheduleExpiry(TOPO, engine=None, clock=lambda: now[0])  # type: ignore[arg-type]
    publisher = FakePublisher()
    scheduler._keep_lifetime_queue(publisher)  # type: ignore[arg-type]
    now[0] += LIFETIME_REDECLARE_SECONDS - 1
    scheduler._keep_lifetime_queue(publisher)  # type: ignore[arg-type]
    assert len(publisher.channel.declared) == 1
    now[0] += 2
    scheduler._keep_lifetime_queue(publisher)  # type: ignore[arg-type]
    assert [q for q, _ in publisher.channel.declared] == ["ns.delay.lifetime.1800"] * 2
    assert publisher.channel.declared[0][1] == TOPO.lifetime_queue_arguments()
