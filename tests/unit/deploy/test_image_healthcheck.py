"""The image's own health check (deploy/healthcheck.py): it finds the service's process,
reads the port from that process's environment, and asks the API's readiness or the
worker's consuming gauge."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from tests.unit.deploy.conftest import DEPLOY
from tests.unit.deploy.test_healthchecks import _free_port, _metrics_server, _readyz_server

spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
assert spec and spec.loader
healthcheck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(healthcheck)
REAL_RUNNING_COMMAND = healthcheck.running_command


def fake_proc(root: Path, processes: dict[int, tuple[list[str], dict[str, str]]]) -> Path:
    for pid, (argv, env) in processes.items():
        entry = root / str(pid)
        entry.mkdir(parents=True)
        (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (entry / "environ").write_bytes(
            b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")
    (root / "self").mkdir(exist_ok=True)
    return root


def run(monkeypatch: pytest.MonkeyPatch, proc: Path) -> int:
    monkeypatch.setattr(healthcheck, "running_command", lambda: REAL_RUNNING_COMMAND(proc))
    return healthcheck.main()


def test_the_worker_port_comes_from_the_workers_environment_not_the_inits_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    Gauge("exchange_tokens_worker_consuming", "c", ["consumer"], registry=registry) \
        .labels("expire").set(1)
    with _metrics_server(registry) as port:
        proc = fake_proc(tmp_path, {
            # An init whose arguments mention the script: not the service's process.
            1: (["/sbin/docker-init", "--", "sh", "-c", "...", "exchange-tokens", "worker"],
                {"WORKER_METRICS_PORT": str(_free_port())}),
            7: (["/opt/venv/bin/python3", "/opt/venv/bin/exchange-tokens", "worker"],
                {"WORKER_METRICS_PORT": str(port)}),
        })
        assert run(monkeypatch, proc) == 0


def test_a_worker_with_a_stopped_consumer_or_no_metrics_is_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("exchange_tokens_worker_consuming", "c", ["consumer"], registry=registry)
    gauge.labels("expire").set(1)
    gauge.labels("audit").set(0)
    with _metrics_server(registry) as port:
        proc = fake_proc(tmp_path / "a", {
            7: (["python3", "/opt/venv/bin/exchange-tokens", "worker"],
                {"WORKER_METRICS_PORT": str(port)})})
        assert run(monkeypatch, proc) == 1
    proc = fake_proc(tmp_path / "b", {
        7: (["exchange-tokens", "worker", "--metrics-port", "0"], {})})
    assert run(monkeypatch, proc) == 1


@pytest.mark.parametrize(("status", "expected"), [(200, 0), (503, 1)])
def test_the_api_is_healthy_only_while_readyz_answers_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, expected: int
) -> None:
    with _readyz_server(status) as port:
        proc = fake_proc(tmp_path, {
            9: (["/opt/venv/bin/python3", "/opt/venv/bin/exchange-tokens", "api"],
                {"PORT": str(port)})})
        assert run(monkeypatch, proc) == expected


def test_a_one_shot_command_is_healthy_and_a_container_without_the_service_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = fake_proc(tmp_path / "a", {3: (["exchange-tokens", "migrate"], {})})
    assert run(monkeypatch, proc) == 0
    proc = fake_proc(tmp_path / "b", {3: (["sleep", "1000"], {})})
    assert run(monkeypatch, proc) == 1
