"""The service on a three-node RabbitMQ cluster: quorum queues replicated on three nodes,
and when the node leading them is killed, every connection moves to another node and
every expiry and exchange request still happens exactly once, before the node is back."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid

import pytest
from sqlalchemy import text

from chaos.faults import leader_node, wait_for_nodes
from shared import services
from shared.bootstrap import bootstrap
from shared.messaging.topology import declare_topology, delete_topology
from tests.integration.foundation.books import assert_books_balance
from tests.integration.workers.conftest import classify, wait_until
from workers.worker import Worker, WorkerOptions

# No sweep: the refunds must come through the broker, not the safety net.
ROLES = ["relay", "schedule-expiry", "expire", "exchange-requests", "audit"]


@pytest.fixture
def on_cluster(rabbit_cluster, settings):
    clustered = settings.model_copy(update={
        "amqp_url": rabbit_cluster.amqp_url,
        "broker_namespace": f"{settings.broker_namespace}_c{uuid.uuid4().hex[:4]}",
        "token_ttl_seconds": 3,
    })
    container = bootstrap(clustered, pool_size=10)
    topology = declare_topology(clustered)
    yield clustered, container, topology
    container.close()
    wait_for_nodes(rabbit_cluster)
    delete_topology(clustered)


def test_the_queues_are_quorum_queues_on_all_three_nodes(rabbit_cluster, on_cluster):
    clustered, _, topology = on_cluster
    out = rabbit_cluster.ctl(1, "list_queues", "--quiet", "--no-table-headers", "name", "type",
                             "members")
    mine = {line.split()[0]: line for line in out.splitlines()
            if line.startswith(f"{clustered.broker_namespace}.")}
    queue = topology.names.consumer_queue("expire")
    assert "quorum" in mine[queue]
    assert all(rabbit_cluster.node_name(n) in mine[queue] for n in (1, 2, 3)), mine[queue]


def test_killing_the_leader_node_loses_and_doubles_nothing(rabbit_cluster, on_cluster):
    clustered, container, topology = on_cluster
    deps = dataclasses.replace(container.deps, token_ttl_seconds=3, max_active_tokens=1000)
    user, merchant = f"user-{uuid.uuid4().hex[:8]}", f"merchant-{uuid.uuid4().hex[:6]}"
    worker = Worker(container, WorkerOptions(roles=ROLES))
    worker.start(topology)
    victim = None
    try:
        services.credit(deps, user, 10_000)
        issued, redeemed = [], []

        def round_of(n: int) -> None:
            for i in range(n):
                token = services.issue(deps, user, 10).token
                if i % 4 == 0:
                    services.redeem(deps, token.code, merchant)
                    redeemed.append(token.id)
                else:
                    issued.append(token.id)

        round_of(20)
        victim = leader_node(rabbit_cluster, clustered.broker_namespace)
        rabbit_cluster.kill(victim)  # kill -9 of the node leading the queues
        round_of(20)  # the outbox takes them; the relay publishes to the survivors

        # Every left token refunded once and every redeem recorded, the node still down.
        wait_until(lambda: len(classify(container.engine, issued)["once"]) == len(issued),
                   timeout=90, interval=0.5)
        wait_until(lambda: _requests(container.engine, redeemed) == len(redeemed),
                   timeout=60, interval=0.5)
        assert rabbit_cluster.pid(victim) is None or not _alive(rabbit_cluster.pid(victim))
        time.sleep(2)  # room for a late duplicate to show
        assert classify(container.engine, issued)["duplicated"] == []
        assert_books_balance(deps.session_factory, [user])
    finally:
        worker.stop()
        if victim is not None:
            rabbit_cluster.start_node(victim)


def _requests(engine, token_ids) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM exchange_requests WHERE token_id = ANY(:ids)"),
            {"ids": list(token_ids)}).scalar_one())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
