"""Prometheus metrics. Under gunicorn each worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by ``exchange-tokens api`` before workers fork), and
``/metrics`` sums every worker's files, so any worker answers for all of them."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """One app's metrics. In single-process mode they live in the app's own registry (no
    global state: tests build many apps); in multiprocess mode in the shared files."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = None if multiprocess_mode() else CollectorRegistry()
        reg = self.registry
        self.requests = Counter("exchange_tokens_http_requests_total", "HTTP requests answered.",
                                ["method", "route", "status"], registry=reg)
        self.latency = Histogram("exchange_tokens_http_request_duration_seconds", "HTTP request latency.",
                                 ["method", "route", "status"], buckets=BUCKETS, registry=reg)
        self.issued = Counter("exchange_tokens_tokens_issued_total", "Tokens issued.", registry=reg)
        self.redeemed = Counter("exchange_tokens_tokens_redeemed_total", "Tokens redeemed.", registry=reg)
        self.cancelled = Counter("exchange_tokens_tokens_cancelled_total", "Tokens cancelled.", registry=reg)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
