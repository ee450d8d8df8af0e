"""The real API process (``exchange-tokens api``) on a free port, for tests that need the
HTTP server itself rather than Flask's test client."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.settings import Settings
from tests.support.service_env import service_env

CLI = str(Path(sys.executable).with_name("exchange-tokens"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass
class ApiProcess:
    proc: subprocess.Popen
    port: int
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def api_process(settings: Settings, tmp_path: Path, *, ready: bool = True,
                **env: str) -> Iterator[ApiProcess]:
    """Start the API (``env`` overrides its settings); waits until /healthz answers unless
    ``ready`` is false. Always killed at the end, with its workers."""
    port = int(env.pop("PORT", 0)) or free_port()
    environ = service_env(settings, inherit=True, PORT=str(port), TMPDIR=str(tmp_path), **env)
    stderr = tmp_path / f"api-{port}.log"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([CLI, "api"], env=environ, stdout=subprocess.DEVNULL,  # noqa: S603
                                stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while ready and not healthy(port):
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "the API did not come up within 30 s"
            time.sleep(0.2)
        yield ApiProcess(proc, port, stderr)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
