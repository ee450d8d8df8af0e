"""Which servers the test suite runs against (tests/conftest.py ``_servers``), checked by
running a small pytest session under each condition. Docker is faked by an HTTP server
speaking just enough of the Engine API: it answers, but every image pull fails, as on a
machine with a daemon and no registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = '''
def test_probe(_servers):
    print("SERVERS=" + "|".join(_servers))
'''


class FakeEngine:
    def __init__(self) -> None:
        self.requests: list[str] = []


@pytest.fixture
def engine_without_registry() -> Iterator[tuple[str, FakeEngine]]:
    engine = FakeEngine()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            engine.requests.append(f"{self.command} {self.path}")
            path = self.path.split("?")[0]
            if path.endswith("/_ping"):
                self._answer(200, "OK")
            elif path.endswith("/version"):
                self._answer(200, {"ApiVersion": "1.41", "Version": "20.10.24",
                                   "MinAPIVersion": "1.12"})
            elif path.endswith("/images/create"):
                self._answer(500, {"message": "Get https://registry-1.docker.io/v2/: "
                                              "dial tcp: lookup registry-1.docker.io: no such host"})
            else:
                self._answer(404, {"message": "No such image: postgres:15"})

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815 (http.server's naming)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}", engine
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_probe(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "AMQP_URL", "TESTS_USE_CONTAINERS", "DOCKER_HOST")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "-p", "tests.conftest", "--rootdir", str(tmp_path), "-c", os.devnull, str(probe)],
        # No third-party plugins: they only slow the small session down.
        cwd=ROOT, env={**base, "TESTCONTAINERS_RYUK_DISABLED": "true",
                       "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **env},
        capture_output=True, text=True, timeout=120, check=False,
    )


def servers(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [line for line in result.stdout.splitlines() if "SERVERS=" in line]
    assert lines and result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return lines[0].split("SERVERS=", 1)[1].split("|")


def test_a_failed_pull_falls_back_to_the_local_servers_with_one_line(
    tmp_path: Path, engine_without_registry: tuple[str, FakeEngine]
) -> None:
    docker_host, engine = engine_without_registry
    result = run_probe(tmp_path, {"TESTS_USE_CONTAINERS": "1", "DOCKER_HOST": docker_host})
    assert servers(result) == ["postgresql://postgres@127.0.0.1:5432/postgres",
                               "amqp://guest:guest@127.0.0.1:5672/%2F"]
    said = [line for line in result.stdout.splitlines() if "testcontainers unavailable" in line]
    assert len(said) == 1 and "local servers" in said[0], result.stdout
    # The fake engine was really asked: the fallback followed a failed attempt.
    assert engine.requests, "testcontainers never reached the engine"


def test_explicit_urls_win_and_docker_is_not_even_asked(
    tmp_path: Path, engine_without_registry: tuple[str, FakeEngine]
) -> None:
    docker_host, engine = engine_without_registry
    db = "postgresql://postgres@127.0.0.1:5432/postgres?application_name=explicit"
    result = run_probe(tmp_path, {"TESTS_USE_CONTAINERS": "1", "DOCKER_HOST": docker_host,
                                  "DATABASE_URL": db})
    assert servers(result)[0] == db
    assert engine.requests == []


def test_without_a_request_for_containers_docker_is_not_asked(
    tmp_path: Path, engine_without_registry: tuple[str, FakeEngine]
) -> None:
    docker_host, engine = engine_without_registry
    result = run_probe(tmp_path, {"DOCKER_HOST": docker_host})
    assert servers(result)[0] == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert engine.requests == []
