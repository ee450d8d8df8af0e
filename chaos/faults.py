"""The faults of a chaos run, injected one after another. Each has an ``inject`` and a
``heal``; what happens between them is the fault's hold time."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos.cluster import NODES, PostgresPair, RabbitCluster
from chaos.partition import Partition
from chaos.service import Service

log = logging.getLogger("chaos")


@dataclass
class Fault:
    name: str
    inject: Callable[[], str]  # returns what it did, for the report
    heal: Callable[[], str]
    hold_s: float


def leader_node(cluster: RabbitCluster, namespace: str) -> int:
    """The node leading most of the namespace's quorum queues (asked of a live node)."""
    for asked in NODES:
        try:
            counts = cluster.leaders(f"{namespace}.", asked)
        except RuntimeError:
            continue
        return max(counts, key=lambda n: counts[n])
    return 1


def wait_for_nodes(cluster: RabbitCluster, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for asked in NODES:
            try:
                if cluster.running_nodes(asked) == len(NODES):
                    return
            except (RuntimeError, ValueError, OSError):
                continue
        time.sleep(2)
    raise RuntimeError("the broker cluster did not come back to three nodes")


def rejoin(cluster: RabbitCluster, node: int, wait_s: float = 30) -> str:
    """Wait for the faulted node to be back in the cluster; if the others still see a
    partition with it, restart its RabbitMQ application, as an operator would.

    A node paused (SIGSTOP) longer than ``net_ticktime`` is declared down by the others.
    Once resumed it never saw itself in a minority, so ``pause_minority`` does not stop
    it, and Mnesia records a partition that no mode but ``autoheal`` repairs alone: the
    documented repair is to restart the nodes on the losing side, here the one node."""
    try:
        wait_for_nodes(cluster, timeout=wait_s)
        return ""
    except RuntimeError:
        cluster.ctl(node, "stop_app")
        cluster.ctl(node, "start_app")
        wait_for_nodes(cluster)
        return f" (node {node} had to be restarted: the others saw it partitioned)"


def broker_faults(cluster: RabbitCluster, namespace: str, hold_s: float,
                  partition_s: float) -> list[Fault]:
    state: dict[str, object] = {}

    def kill_leader() -> str:
        node = leader_node(cluster, namespace)
        state["killed"] = node
        cluster.kill(node)
        return f"kill -9 of node {node} (leader of most queues)"

    def restart_killed() -> str:
        node = int(state["killed"])  # type: ignore[call-overload]
        cluster.start_node(node)
        wait_for_nodes(cluster)
        return f"node {node} started again and rejoined"

    def pause() -> str:
        node = leader_node(cluster, namespace)
        state["paused"] = node
        cluster.pause(node)
        return f"SIGSTOP of node {node}"

    def resume() -> str:
        node = int(state["paused"])  # type: ignore[call-overload]
        cluster.resume(node)
        return f"SIGCONT of node {node}" + rejoin(cluster, node)

    def cut() -> str:
        node = leader_node(cluster, namespace)
        partition = Partition(cluster, node)
        state["partition"] = partition
        partition.cut()
        return f"node {node} cut off from the other two"

    def heal_cut() -> str:
        partition = state["partition"]
        assert isinstance(partition, Partition)
        partition.heal()
        return f"partition of node {partition.node} healed" + rejoin(cluster, partition.node)

    return [
        Fault("broker node killed", kill_leader, restart_killed, hold_s),
        Fault("broker node paused", pause, resume, hold_s),
        Fault("broker node partitioned", cut, heal_cut, partition_s),
    ]


def database_failover(pair: PostgresPair, hold_s: float) -> Fault:
    def kill_primary() -> str:
        pair.kill_primary()
        return "kill -9 of the PostgreSQL primary"

    def promote() -> str:
        pair.promote()
        return "standby promoted"

    return Fault("database failover", kill_primary, promote, hold_s)


def process_kills(service: Service, hold_s: float, kills: int = 3) -> Fault:
    done: list[str] = []

    def kill_some() -> str:
        for i in range(kills):
            # The relay once for sure, then workers (or the relay again) at random.
            if i == 0:
                service.kill("relay")
                done.append("relay")
            else:
                done.append(service.kill_random())
            time.sleep(random.uniform(0.5, 2.0))  # noqa: S311 - timing spread only
            service.supervise()  # restarted, as an orchestrator would
        return "kill -9 of " + ", ".join(done)

    def nothing() -> str:
        return "killed processes restarted"

    return Fault("workers and relay killed", kill_some, nothing, hold_s)
