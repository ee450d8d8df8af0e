"""The ops console's API tests: a broker namespace of their own, empty queues per test,
and the API and workers as real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.ops_fixtures import channel, namespace_of_its_own, ops_topology, stack
from tests.support.ops_stack import Stack, wait_for

__all__ = ["channel", "ops_topology", "stack"]  # fixtures, used by name


@pytest.fixture(scope="session")
def ops_settings(settings: Settings) -> Iterator[Settings]:
    yield from namespace_of_its_own(settings, "ops")


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
