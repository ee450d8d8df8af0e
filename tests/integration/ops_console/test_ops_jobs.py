"""Replay and purge jobs, in process, on the real broker and database: one worker per job,
a job resumed by another worker after its own went silent moves each message once, and a
dead letter whose republish is refused stays parked."""

from __future__ import annotations

import threading
import time

import pika
import pytest

from shared.messaging.names import H_ORIGINAL_EXCHANGE
from shared.services import ops_jobs
from shared.services.ops_dead_letters import ParkingQueue
from shared.services.ops_selection import Filter, Selection
from tests.support.ops_stack import close_open_jobs, depth, park_poison

POISON = Selection(group=("ValidationError", "poison"))


@pytest.fixture(autouse=True)
def no_open_jobs(deps):
    """Each test claims its own job only: none left open before or after it."""
    close_open_jobs(deps)
    yield
    close_open_jobs(deps)


def test_two_workers_claiming_at_once_take_a_job_once(deps):
    job = ops_jobs.create(deps, "purge", POISON, "olga")
    barrier = threading.Barrier(4)
    got: list[int | None] = []

    def claim(n: int) -> None:
        barrier.wait()
        got.append(ops_jobs.claim(deps, f"worker-{n}"))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(x for x in got if x is not None) == [job.id]
    assert ops_jobs.get(deps, job.id).status == "running"  # type: ignore[union-attr]


def test_a_job_resumed_by_another_worker_moves_each_message_once(
        deps, ops_settings, ops_topology, channel):
    # Given 20 poison events whose replay lands in the schedule-expiry queue (no consumer)
    park_poison(channel, ops_topology, 20)
    target = ops_topology.names.consumer_queue("schedule-expiry")
    job = ops_jobs.create(deps, "replay", POISON, "olga", rate=40)

    # When the first worker stops part-way (as if it died) ...
    stop = threading.Event()
    assert ops_jobs.claim(deps, "first") == job.id
    with ParkingQueue.open(ops_settings) as queue:
        runner = threading.Thread(target=ops_jobs.run, args=(deps, queue, job.id, "first", stop))
        runner.start()
        time.sleep(0.2)
        stop.set()
        runner.join(10)
    half = ops_jobs.get(deps, job.id)
    assert half is not None and half.status == "running" and 0 < half.done < 20
    assert ops_jobs.claim(deps, "second") is None  # its heartbeat is still fresh

    # ... another worker takes it over once the first is silent, and finishes it
    assert ops_jobs.claim(deps, "second", stale_seconds=0) == job.id
    with ParkingQueue.open(ops_settings) as queue:
        done = ops_jobs.run(deps, queue, job.id, "second")

    # Then every message was republished exactly once
    assert (done.status, done.total, done.done, done.failed) == ("done", 20, 20, 0)
    assert depth(channel, target) == 20
    assert depth(channel, ops_topology.names.dead_letter_queue) == 0


def test_a_refused_republish_leaves_the_dead_letter_parked(deps, ops_settings, ops_topology,
                                                          channel):
    channel.basic_publish(
        ops_topology.names.dead_letter_exchange, "", b'{"type": "TokenIssued"}',
        pika.BasicProperties(delivery_mode=2, message_id="orphan", headers={
            H_ORIGINAL_EXCHANGE: "no-such-exchange", "x-original-routing-key": "TokenIssued",
            "x-dead-letter-reason": "exhausted"}),
        mandatory=True)
    job = ops_jobs.create(deps, "replay", Selection(filter=Filter()), "olga")
    assert ops_jobs.claim(deps, "w") == job.id
    with ParkingQueue.open(ops_settings) as queue:
        done = ops_jobs.run(deps, queue, job.id, "w")
    assert (done.done, done.failed) == (0, 1)
    assert "404" in ops_jobs.get(deps, job.id).outcomes["orphan"]  # type: ignore[union-attr]
    assert depth(channel, ops_topology.names.dead_letter_queue) == 1


def test_a_worker_that_lost_its_job_stops_at_its_next_write(deps, ops_settings, channel,
                                                           ops_topology):
    park_poison(channel, ops_topology, 3)
    job = ops_jobs.create(deps, "purge", POISON, "olga", rate=1000)
    assert ops_jobs.claim(deps, "slow") == job.id
    assert ops_jobs.claim(deps, "quick", stale_seconds=0) == job.id  # "slow" went silent
    with ParkingQueue.open(ops_settings) as queue, pytest.raises(ops_jobs.JobLost):
        ops_jobs.run(deps, queue, job.id, "slow")
    row = ops_jobs.get(deps, job.id)
    assert row is not None and row.status == "running" and row.total is None
    assert depth(channel, ops_topology.names.dead_letter_queue) == 3  # it touched nothing


def test_a_selection_that_matches_nothing_ends_at_once(deps, ops_settings):
    job = ops_jobs.create(deps, "replay", Selection(ids=("not-parked",)), "olga")
    assert ops_jobs.claim(deps, "w") == job.id
    with ParkingQueue.open(ops_settings) as queue:
        done = ops_jobs.run(deps, queue, job.id, "w")
    assert (done.status, done.total, done.done, done.failed) == ("done", 0, 0, 0)
