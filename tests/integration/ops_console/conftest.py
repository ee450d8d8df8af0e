"""The ops console's API tests: a broker namespace of their own, empty queues per test,
and the API and workers as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.messaging.topology import Topology, declare_topology, delete_topology
from shared.settings import Settings
from tests.support.ops_stack import Stack, broker_channel, close_open_jobs, wait_for


@pytest.fixture(scope="session")
def ops_settings(settings: Settings) -> Iterator[Settings]:
    s = settings.model_copy(update={"broker_namespace": f"{settings.broker_namespace}-ops"})
    declare_topology(s)
    yield s
    delete_topology(s)


@pytest.fixture(scope="session")
def ops_topology(ops_settings: Settings) -> Topology:
    return Topology.for_settings(ops_settings)


@pytest.fixture
def channel(ops_settings: Settings, ops_topology: Topology):
    with broker_channel(ops_settings) as ch:
        for queue in (ops_topology.names.dead_letter_queue, *ops_topology.consumer_queues()):
            ch.queue_purge(queue)
        yield ch


@pytest.fixture
def stack(ops_settings: Settings, deps, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(ops_settings, tmp_path)
    try:
        yield s
    finally:
        s.stop_all()
        close_open_jobs(deps)


def start_workers(stack: Stack, channel, topo: Topology) -> None:
    """The expire consumer (applies replayed timers) and the ops role (runs the jobs), in
    two processes, as a deployment may run them."""
    stack.worker("expire-worker", "expire")
    stack.worker("ops-worker", "ops")
    expire_queue = topo.names.consumer_queue("expire")
    wait_for(lambda: channel.queue_declare(expire_queue, passive=True).method.consumer_count,
             30, "the expire consumer")
    log = stack.logs / "ops-worker.log"
    wait_for(lambda: log.exists() and b"worker started" in log.read_bytes(), 30, "the ops role")
