"""``run-all`` (what ``make run`` starts): the API and one worker, stopped together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

from tests.support.workers import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:  # noqa: S310
            return r.status == 200
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def start(spawn, process_env, tmp_path):
    port = free_port()
    process_env["PORT"] = str(port)
    process_env["WEB_CONCURRENCY"] = "1"
    log_path = tmp_path / "run-all.log"
    proc = spawn("run-all", stderr_path=log_path)
    wait_until(lambda: healthy(port), timeout=30, interval=0.2)
    wait_until(lambda: b"consumer started" in log_path.read_bytes(), timeout=30)
    return proc, port


def test_ctrl_c_stops_the_api_and_the_worker_and_exits_0(spawn, process_env, tmp_path):
    proc, port = start(spawn, process_env, tmp_path)
    kids = children_of(proc.pid)
    assert len(kids) == 2
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert proc.wait(25) == 0
    assert not healthy(port)
    assert all(subprocess.run(["kill", "-0", str(k)], capture_output=True).returncode != 0
               for k in kids)


def test_if_the_worker_dies_the_api_is_stopped_and_the_status_is_non_zero(
    spawn, process_env, tmp_path
):
    proc, port = start(spawn, process_env, tmp_path)
    kids = children_of(proc.pid)
    worker = next(k for k in kids if b" worker" in open(f"/proc/{k}/cmdline", "rb").read()
                  .replace(b"\0", b" "))
    os.kill(worker, signal.SIGKILL)
    assert proc.wait(25) != 0
    time.sleep(0.2)
    assert not healthy(port)
