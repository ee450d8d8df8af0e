"""Several workers on one host: with default settings each serves its metrics on a port of
its own and logs which; a port asked for explicitly that is taken ends the start with one
line and a non-zero exit, not a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import CLI
from tests.integration.workers.conftest import wait_until

pytestmark = pytest.mark.timeout(90)

ROLES = ["--role", "audit"]  # a light role: the test is about the metrics server


def served_port(log_path: Path) -> int | None:
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["event"] == "worker metrics served":
                return int(record["port"])
    return None


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_two_workers_with_default_settings_both_run_and_both_are_scrapeable(
    spawn, process_env, tmp_path
):
    process_env.pop("WORKER_METRICS_PORT")  # as on a fresh machine: nothing asked for
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    workers = [spawn("worker", *ROLES, stderr_path=log) for log in logs]

    ports = [wait_until(lambda log=log: served_port(log), timeout=30) for log in logs]

    assert ports[0] != ports[1]
    for port in ports:
        assert "exchange_tokens_worker_consuming" in scrape(port)
    wait_until(lambda: all(b"consumer started" in log.read_bytes() for log in logs), timeout=30)
    assert all(w.poll() is None for w in workers), "a worker died at start"


@pytest.mark.parametrize("how", ["option", "environment"])
def test_an_explicit_port_that_is_taken_is_one_line_and_a_non_zero_exit(
    process_env, tmp_path, how
):
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))  # noqa: S104 - where the worker serves its metrics
        holder.listen()
        port = holder.getsockname()[1]
        env = dict(process_env)
        args = [CLI, "worker", *ROLES]
        if how == "option":
            args += ["--metrics-port", str(port)]
        else:
            env["WORKER_METRICS_PORT"] = str(port)
        done = subprocess.run(args, env=env, capture_output=True, timeout=60, check=False)  # noqa: S603
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"metrics port {port} is already in use" in lines[0]
    assert "Traceback" not in done.stderr.decode()
