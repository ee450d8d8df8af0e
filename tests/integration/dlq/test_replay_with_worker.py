"""End to end with a real worker process (`exchange-tokens worker`): the dead letters it
parks are read by the console, and what the console replays the worker handles on its
normal, idempotent path: a refund replayed twice is restored once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import pytest
from sqlalchemy import func, select

from shared import services
from shared.persistence.tables import LedgerEntry
from shared.services.deps import Deps
from tests.integration.dlq.builders import expire_routing_key, expiry_command, redeemed
from tests.support.clock import FixedClock
from tests.support.service_env import service_env

EXE = Path(sys.executable).with_name("exchange-tokens")


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return value


@pytest.fixture
def worker(dlq_settings, broker, topology) -> Iterator[Path]:
    """One worker process consuming the expire and exchange-requests queues of our
    namespace (no sweep: only a replayed timer may refund). Stopped even on failure."""
    env = service_env(dlq_settings, inherit=True)
    log_file = Path(tempfile.mkstemp(prefix="dlq-worker-", suffix=".log")[1])
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [str(EXE), "worker", "--role", "expire", "--role", "exchange-requests",
             "--metrics-port", "0"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        def consuming() -> bool:
            return all(
                broker.channel.queue_declare(topology.names.consumer_queue(c), passive=True)
                .method.consumer_count > 0
                for c in ("expire", "exchange-requests")
            )

        wait_for(consuming, 30, "the worker to start consuming")
        yield log_file
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.unlink(missing_ok=True)


def refunds(deps, token_id) -> int:
    with deps.session_factory() as session:
        return session.execute(
            select(func.count()).where(LedgerEntry.token_id == token_id,
                                       LedgerEntry.kind == "refund")
        ).scalar_one()


def queue_empty(broker, queue) -> bool:
    ok = broker.channel.queue_declare(queue, passive=True).method
    return ok.message_count == 0


def test_a_refund_replayed_twice_through_a_real_worker_is_restored_once(
    cli, broker, topology, deps, user, worker
):
    # Given an expired token whose timer sits in the parking queue
    services.credit(deps, user, 100)
    an_hour_ago = Deps(session_factory=deps.session_factory,
                       clock=FixedClock(datetime.now(UTC) - timedelta(hours=1)))
    token = services.issue(an_hour_ago, user, 70).token
    command = expiry_command(token.id, user, 70, token.expires_at)

    def park_timer() -> str:
        return broker.park(command, exchange=topology.delayed_exchange,
                           routing_key=expire_routing_key(), queue="expire")

    dead_letter_id = park_timer()

    # When ops replay it, the worker refunds it
    assert cli("replay", "--id", dead_letter_id).exit_code == 0
    wait_for(lambda: services.balance(deps, user) == 100, 15, "the refund")

    # And when the same timer is parked and replayed once more
    assert park_timer() == dead_letter_id
    assert cli("replay", "--id", dead_letter_id).exit_code == 0
    expire_queue = topology.names.consumer_queue("expire")
    wait_for(lambda: queue_empty(broker, expire_queue), 15, "the worker to take the replay")
    time.sleep(0.5)  # let its transaction finish

    # Then the points came back exactly once, and nothing was parked again
    assert refunds(deps, token.id) == 1
    assert services.balance(deps, user) == 100
    assert broker.depth() == 0


def test_a_poison_message_parked_by_the_worker_is_listed_judged_and_purged(
    cli, broker, topology, worker
):
    # Given a TokenRedeemed without its merchant: the worker parks it as poison
    bad = redeemed()
    del bad["merchant_id"]
    broker.channel.basic_publish(
        topology.names.events_exchange, "TokenRedeemed", json.dumps(bad).encode(),
        pika.BasicProperties(delivery_mode=2, message_id=bad["event_id"],
                             content_type="application/json"),
        mandatory=True,
    )
    wait_for(lambda: broker.depth() == 1, 15, "the worker to dead-letter the poison message")

    (row,) = json.loads(cli("list", "--json").stdout)["messages"]
    assert row["id"] == bad["event_id"]
    assert row["reason"] == "poison" and row["exception_type"] == "ValidationError"
    assert row["original_exchange"] == topology.names.events_exchange
    assert row["original_routing_key"] == "TokenRedeemed"

    dry = json.loads(cli("replay", "--all", "--dry-run", "--json").stdout)
    (verdict,) = dry["messages"]
    assert verdict["outcome"].startswith("poison: would fail again (TokenRedeemed.merchant_id")

    assert cli("purge", "--id", row["id"], "--yes").exit_code == 0
    assert broker.depth() == 0
