"""deploy/compose.yaml, up for real: the one-shot migration, the API and the workers as the
containers a user runs, then killed with -9, scaled and stopped while tokens expire.
Every token must be refunded exactly once, checked in the ledger."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import jwt
import pytest
import requests

from shared import services
from tests.containers.conftest import STACK_JWT_SECRET
from tests.containers.stack import Stack
from tests.support.workers import classify, wait_until

pytestmark = pytest.mark.timeout(600)


def counts(engine, token_ids) -> dict[str, int]:
    """Jepsen style, as numbers: tokens lost (never refunded), refunded once, duplicated."""
    return {kind: len(ids) for kind, ids in classify(engine, token_ids).items()}


def refunded(engine, token_ids) -> int:
    return len(token_ids) - len(classify(engine, token_ids)["lost"])


def bearer(sub: str, *roles: str) -> dict[str, str]:
    claims = {"sub": sub, "exp": int(time.time()) + 600, "roles": list(roles)}
    return {"Authorization": f"Bearer {jwt.encode(claims, STACK_JWT_SECRET, 'HS256')}"}


@pytest.fixture(scope="module")
def running(stack: Stack) -> dict[str, float]:
    """migrate run to its end, then the API and two workers healthy; the figures."""
    stack.up("migrate")
    (migrate,) = stack.containers("migrate", all_states=True)
    from tests.containers.images import docker

    status = int(docker("wait", migrate, timeout=180).stdout.strip())
    assert status == 0, f"migrate exited {status}:\n{stack.logs(migrate)[-3000:]}"
    started = time.monotonic()
    stack.up("api", "worker", workers=2)
    stack.wait_healthy("api", 1)
    api_ready = time.monotonic() - started
    stack.wait_healthy("worker", 2)
    stack.figures = {"migrate_status": status, "api_cold_start_s": api_ready}  # type: ignore[attr-defined]
    return stack.figures  # type: ignore[attr-defined]


@pytest.fixture
def burst(stack_container):
    """Issue ``count`` tokens expiring from 4 s after their issue over ``spread`` seconds,
    straight into the stack's database; the containers' relay and workers do the rest."""

    def issue(count: int, spread: int = 4) -> list:
        deps = stack_container.deps
        users = [f"burst-{uuid.uuid4().hex[:10]}" for _ in range(20)]
        for u in users:
            services.credit(deps, u, 1000)
        ids = []
        for i in range(count):
            short = dataclasses.replace(deps, token_ttl_seconds=4 + i % spread,
                                        max_active_tokens=1000)
            ids.append(services.issue(short, users[i % 20], 1).token.id)
        return ids

    return issue


def test_the_migration_exits_0_and_the_api_and_two_workers_become_healthy(
    stack: Stack, running: dict[str, float]
) -> None:
    assert running["migrate_status"] == 0
    assert len(stack.wait_healthy("api", 1)) == 1
    assert len(stack.wait_healthy("worker", 2)) == 2
    print(f"\nAPI container from start to healthy: {running['api_cold_start_s']:.1f} s")


def test_tokens_issued_through_the_api_container_expire_through_the_worker_containers(
    stack: Stack, running: dict[str, float], stack_container
) -> None:
    api = stack.api_url  # type: ignore[attr-defined]
    ids = []
    for _ in range(4):
        user = f"api-{uuid.uuid4().hex[:10]}"
        credited = requests.post(f"{api}/api/accounts/{user}/credits", json={"points": 50},
                                 headers=bearer("ops", "admin"), timeout=10)
        assert credited.status_code == 201, credited.text
        for _ in range(3):
            issued = requests.post(f"{api}/api/exchange-tokens/", json={"points": 5},
                                   headers=bearer(user, "user"), timeout=10)
            assert issued.status_code == 201, issued.text
            ids.append(uuid.UUID(issued.json()["token"]["id"]))
        assert issued.json()["balance"] == 35
    # Then every token comes back once, refunded by the workers when it expires
    wait_until(lambda: refunded(stack_container.engine, ids) == len(ids), timeout=60)
    time.sleep(1)
    assert counts(stack_container.engine, ids) == {"lost": 0, "once": 12, "duplicated": 0}


def test_kill_9_of_a_worker_container_mid_burst_loses_and_doubles_nothing(
    stack: Stack, running: dict[str, float], stack_container, burst
) -> None:
    from tests.containers.images import docker

    engine = stack_container.engine
    victim = stack.wait_healthy("worker", 2)[0]
    ids = burst(1000)
    # When one worker container is killed with -9 while refunds are under way
    wait_until(lambda: refunded(engine, ids) >= 50, timeout=60, interval=0.02)
    docker("kill", "-s", "KILL", victim)
    at_kill = refunded(engine, ids)
    assert at_kill < 1000, "the kill came too late to prove anything"
    # Then the other one finishes: every token refunded exactly once
    wait_until(lambda: refunded(engine, ids) == len(ids), timeout=120, interval=0.5)
    time.sleep(2)
    assert counts(engine, ids) == {"lost": 0, "once": 1000, "duplicated": 0}
    assert stack.inspect(victim)["State"]["ExitCode"] == 137
    # And the service is brought back to two workers
    docker("rm", victim)
    stack.up("worker", workers=2)
    stack.wait_healthy("worker", 2)


def test_scaling_workers_from_2_to_3_and_back_keeps_every_refund_exactly_once(
    stack: Stack, running: dict[str, float], stack_container, burst
) -> None:
    engine = stack_container.engine
    stack.wait_healthy("worker", 2)
    # Expiries spread over 45 s: starting a third container takes a while on a busy machine.
    ids = burst(1000, spread=45)
    wait_until(lambda: refunded(engine, ids) >= 50, timeout=60, interval=0.02)
    stack.up("worker", workers=3)
    stack.wait_healthy("worker", 3)
    mid = refunded(engine, ids)
    stack.up("worker", workers=2)
    wait_until(lambda: refunded(engine, ids) == len(ids), timeout=120, interval=0.5)
    time.sleep(2)
    assert mid < 1000, "the scaling came too late to prove anything"
    assert counts(engine, ids) == {"lost": 0, "once": 1000, "duplicated": 0}
    assert len(stack.wait_healthy("worker", 2)) == 2


def test_every_container_logs_one_json_object_per_line(
    stack: Stack, running: dict[str, float]
) -> None:
    containers = [*stack.containers("api"), *stack.containers("worker")]
    for container in containers:
        out, err = stack.log_streams(container)
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert lines, container
        for line in lines:
            record = json.loads(line)
            assert {"ts", "level", "event"} <= record.keys(), line
    # The one-shot migration logs JSON too; its stdout is the command's report to a human.
    (migrate,) = stack.containers("migrate", all_states=True)
    _, err = stack.log_streams(migrate)
    for line in err.splitlines():
        if line.strip():
            json.loads(line)


def test_a_stopped_container_exits_0_within_its_stop_grace_period(
    stack: Stack, running: dict[str, float]
) -> None:
    from tests.containers.images import docker

    for service, grace in (("worker", 30), ("api", 30)):
        container = stack.wait_healthy(service, 2 if service == "worker" else 1)[0]
        started = time.monotonic()
        docker("stop", "--time", str(grace), container, timeout=grace + 30)
        took = time.monotonic() - started
        state = stack.inspect(container)["State"]
        assert state["ExitCode"] == 0, (service, state, stack.logs(container)[-2000:])
        assert took < grace, (service, took)
