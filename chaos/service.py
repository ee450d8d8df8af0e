"""The service's own processes under test: one API, workers, a relay of its own.

Started as an operator would (the ``exchange-tokens`` command with only the environment
changed), and restarted by :meth:`Service.supervise` after a kill, as an orchestrator
restarts a crashed container.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

COMMAND = [sys.executable, "-m", "cli"]
CONSUMER_ROLES = ["schedule-expiry", "expire", "exchange-requests", "audit", "sweep"]


@dataclass
class Process:
    name: str
    args: list[str]
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class Service:
    env: dict[str, str]
    port: int
    log_dir: Path
    processes: dict[str, Process] = field(default_factory=dict)

    @classmethod
    def build(cls, env: dict[str, str], port: int, log_dir: Path, workers: int = 2) -> Service:
        service = cls(env={**os.environ, **env, "PORT": str(port)}, port=port, log_dir=log_dir)
        service.processes["api"] = Process("api", ["api"])
        service.processes["relay"] = Process("relay", ["worker", "--role", "relay",
                                                        "--metrics-port", "0"])
        for i in range(1, workers + 1):
            roles = [arg for role in CONSUMER_ROLES for arg in ("--role", role)]
            service.processes[f"worker-{i}"] = Process(
                f"worker-{i}", ["worker", *roles, "--metrics-port", "0"])
        return service

    def migrate(self) -> None:
        subprocess.run([*COMMAND, "migrate"], env=self.env, check=True,  # noqa: S603
                       capture_output=True, timeout=120)

    def start(self) -> None:
        for process in self.processes.values():
            self._spawn(process)
        self.wait_ready()

    def _spawn(self, process: Process) -> None:
        log = open(self.log_dir / f"{process.name}.log", "ab")  # noqa: SIM115 - the child's
        process.popen = subprocess.Popen([*COMMAND, *process.args], env=self.env,  # noqa: S603
                                         stdout=log, stderr=log, start_new_session=True)
        log.close()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        api = self.processes["api"].popen
        while time.monotonic() < deadline:
            if api is not None and api.poll() is not None:
                break  # it exited: its log says why
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",  # noqa: S310
                                            timeout=3) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the API did not become ready (see {self.log_dir}/api.log)")

    def kill(self, name: str) -> None:
        """kill -9 of the process and its children (gunicorn's workers too)."""
        process = self.processes[name]
        if process.popen and process.popen.poll() is None:
            os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait()

    def kill_random(self, kinds: tuple[str, ...] = ("relay", "worker")) -> str:
        name = random.choice([n for n in self.processes if n.startswith(kinds)])  # noqa: S311
        self.kill(name)
        return name

    def supervise(self) -> list[str]:
        """Start again whatever died; the names restarted."""
        restarted = []
        for process in self.processes.values():
            if process.popen is None or process.popen.poll() is not None:
                process.restarts += 1
                self._spawn(process)
                restarted.append(process.name)
        return restarted

    def stop(self) -> None:
        for process in self.processes.values():
            if process.popen and process.popen.poll() is None:
                os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 25
        for process in self.processes.values():
            if process.popen is None:
                continue
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
