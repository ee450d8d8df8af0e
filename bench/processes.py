"""Subprocesses a benchmark needs (API, workers, a hello-world server): started in their
own process group with logs to a file, always stopped in ``finally``, and measured."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


# Where the servers' output goes: memory (tmpfs) where there is some. On the disk, the
# kernel's writeback of the API's two JSON lines per request competed with PostgreSQL's
# WAL flushes on the same device: about once per ten seconds a flush took ~100 ms and
# every request in flight waited for it. That was the p99 at half the peak rate (29-36 ms
# with the logs on disk, 6-8 ms in memory, same runs). A deployment does not write its
# logs on the database's disk; the lines are still formatted and written here.
_SHM = "/dev/shm"  # noqa: S108 - NamedTemporaryFile makes its file there safely (O_EXCL)
LOG_DIR = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


class ProcessFailed(RuntimeError):
    pass


@contextmanager
def running(name: str, argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv``; on exit SIGTERM its process group (gunicorn's workers too), then
    SIGKILL whatever is left after 10 s."""
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False,
                                      dir=LOG_DIR)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        _stop(proc)
        log.close()
        os.unlink(log.name)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:  # stragglers in the group (a gunicorn worker that ignored the master's TERM)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def log_tail(proc: subprocess.Popen[bytes], lines: int = 20) -> str:
    try:
        text = Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProcessFailed(f"exited with {proc.returncode}:\n{log_tail(proc)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ProcessFailed(f"port {port} not open after {timeout} s:\n{log_tail(proc)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def rss_mb(pid: int, include_children: bool = True) -> float:
    """Resident memory (VmRSS from /proc) of ``pid``, plus its descendants'."""
    total_kb = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            continue
        if include_children:
            todo.extend(_children(p))
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(p))
    return total / ticks
