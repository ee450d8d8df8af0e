"""The worker as a real process: spawned with the test session's database and namespace,
always killed when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.messaging.topology import declare_topology
from tests.support.service_env import service_env

CLI = str(Path(sys.executable).with_name("exchange-tokens"))


@pytest.fixture(scope="session")
def topology(settings):
    return declare_topology(settings)


@pytest.fixture
def process_env(settings) -> dict[str, str]:
    return service_env(settings, inherit=True, WORKER_METRICS_PORT="0", LOG_LEVEL="INFO")


@pytest.fixture
def spawn(topology, process_env) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``exchange-tokens <args>``; stderr goes to a file the test can read."""
    started: list[subprocess.Popen] = []

    def start(*args: str, stderr_path: Path | None = None) -> subprocess.Popen:
        stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(  # noqa: S603 - our own console script
            [CLI, *args], env=process_env, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        # The whole process group: a child left behind by a crashed parent goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
