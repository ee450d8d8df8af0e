"""The containers' healthchecks, run for real: the exact commands of compose.yaml, with the
python of the image, against local HTTP servers standing in for the container's process.

The worker's check must pass only while every consumer reports that it is consuming: a
worker process that is alive but whose consumers stopped is the classic silent failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


def _run_check(test: list[str], env: dict[str, str]) -> int:
    assert test[0] == "CMD" and test[1] == "python", test
    result = subprocess.run(
        [sys.executable, *test[2:]],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False,
    )
    return result.returncode


@contextmanager
def _metrics_server(registry: CollectorRegistry) -> Iterator[int]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_registry(consuming: dict[str, float] | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    # Other worker metrics are served too: the check must pick out its own gauge.
    Counter("exchange_tokens_refunds_total", "refunds", registry=registry).inc(3)
    if consuming is not None:
        gauge = Gauge("exchange_tokens_worker_consuming", "consuming", ["consumer"],
                      registry=registry)
        for consumer, value in consuming.items():
            gauge.labels(consumer).set(value)
    return registry


@pytest.mark.parametrize(
    ("consuming", "healthy"),
    [
        ({"schedule-expiry": 1, "expire": 1, "exchange-requests": 1, "audit": 1}, True),
        ({"schedule-expiry": 1, "expire": 0, "exchange-requests": 1, "audit": 1}, False),
        ({"schedule-expiry": 0, "expire": 0, "exchange-requests": 0, "audit": 0}, False),
        (None, False),
    ],
    ids=["all-consuming", "one-consumer-stopped", "none-consuming", "gauge-missing"],
)
def test_the_worker_is_healthy_only_while_every_consumer_is_consuming(
    services: dict[str, Any], consuming: dict[str, float] | None, healthy: bool
) -> None:
    test = services["worker"]["healthcheck"]["test"]
    with _metrics_server(_worker_registry(consuming)) as port:
        code = _run_check(test, {"WORKER_METRICS_PORT": str(port)})
    assert (code == 0) is healthy, code


def test_an_unlabelled_consuming_gauge_at_one_is_healthy(services: dict[str, Any]) -> None:
    registry = CollectorRegistry()
    Gauge("exchange_tokens_worker_consuming", "consuming", registry=registry).set(1)
    with _metrics_server(registry) as port:
        assert _run_check(services["worker"]["healthcheck"]["test"],
                          {"WORKER_METRICS_PORT": str(port)}) == 0


def test_a_worker_that_serves_no_metrics_is_unhealthy(services: dict[str, Any]) -> None:
    code = _run_check(services["worker"]["healthcheck"]["test"],
                      {"WORKER_METRICS_PORT": str(_free_port())})
    assert code != 0


@contextmanager
def _readyz_server(status: int) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            code = status if self.path == "/readyz" else 404
            body = b'{"status": "ok"}' if code == 200 else b'{"error": {}}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_api_is_healthy_only_while_readyz_answers_200(
    services: dict[str, Any], status: int, healthy: bool
) -> None:
    with _readyz_server(status) as port:
        code = _run_check(services["api"]["healthcheck"]["test"], {"PORT": str(port)})
    assert (code == 0) is healthy, code


def test_an_api_that_does_not_answer_is_unhealthy(services: dict[str, Any]) -> None:
    assert _run_check(services["api"]["healthcheck"]["test"], {"PORT": str(_free_port())}) != 0
