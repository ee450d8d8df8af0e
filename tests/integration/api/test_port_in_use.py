"""A port another server already listens on is refused with one line naming it, and a
non-zero exit: by ``exchange-tokens api`` and by ``run-all`` (``make run``). Before, a
second API joined the port silently and the two split the requests; a second ``make run``
ended in a 30-line traceback."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.support.api_process import CLI, api_process, free_port
from tests.support.service_env import service_env


def _run(settings, tmp_path, command: str, port: int) -> subprocess.CompletedProcess:
    env = service_env(settings, inherit=True, PORT=str(port), TMPDIR=str(tmp_path),
                      WORKER_METRICS_PORT="0")
    return subprocess.run([CLI, command], env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=60)


def _one_line_naming(result: subprocess.CompletedProcess, port: int) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["api", "run-all"])
def test_a_second_server_on_a_served_port_is_refused_in_one_line(
        settings, tmp_path, command):
    with api_process(settings, tmp_path, WEB_CONCURRENCY="1") as first:
        line = _one_line_naming(_run(settings, tmp_path, command, first.port), first.port)
        assert f"pid {first.proc.pid}" in line or "exchange-tokens" in line, line
        assert first.proc.poll() is None  # the first one serves on, alone


@pytest.mark.parametrize("command", ["api", "run-all"])
def test_a_port_held_by_any_other_program_is_refused(settings, tmp_path, command):
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        _one_line_naming(_run(settings, tmp_path, command, port), port)
