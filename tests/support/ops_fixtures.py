"""Fixtures shared by the ops console's API tests and the browser tests: a broker namespace
of their own (each conftest names it with ``ops_settings``), queues emptied per test, and
the API and workers as real processes. A conftest imports the ones it uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.support.namespaces import namespace_of_its_own
from tests.support.ops_stack import Stack, broker_channel, close_open_jobs

__all__ = ["channel", "namespace_of_its_own", "ops_topology", "stack"]


@pytest.fixture(scope="session")
def ops_topology(ops_settings: Settings) -> Topology:
    return Topology.for_settings(ops_settings)


@pytest.fixture
def channel(ops_settings: Settings, ops_topology: Topology) -> Iterator[Any]:
    with broker_channel(ops_settings) as ch:
        for queue in (ops_topology.names.dead_letter_queue, *ops_topology.consumer_queues()):
            ch.queue_purge(queue)
        yield ch


@pytest.fixture
def stack(ops_settings: Settings, deps: Any, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(ops_settings, tmp_path)
    try:
        yield s
    finally:
        s.stop_all()
        close_open_jobs(deps)
