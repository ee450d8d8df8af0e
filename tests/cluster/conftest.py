"""A three-node RabbitMQ cluster for the session and a replicated PostgreSQL per test,
on ports of their own beside the machine's servers (deploy/local/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.cluster import PostgresPair, RabbitCluster, missing_prerequisite
from chaos.partition import remove_leftovers


def _require_cluster_tools() -> None:
    missing = missing_prerequisite()
    if missing:
        pytest.skip(f"cluster tests skipped: {missing}")


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    _require_cluster_tools()
    cluster = RabbitCluster.start()
    try:
        yield cluster
    finally:
        remove_leftovers(cluster)
        cluster.stop()


@pytest.fixture
def pg_pair() -> Iterator[PostgresPair]:
    _require_cluster_tools()
    pair = PostgresPair.start()
    try:
        yield pair
    finally:
        pair.stop()
