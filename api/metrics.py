"""Prometheus metrics. Under gunicorn each worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by ``exchange-tokens api`` before workers fork), and
``/metrics`` sums every worker's files, so any worker answers for all of them."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

# A client may send any method token; beyond these it is counted as "other", so a
# scanner cannot grow the label set (and the multiprocess files) without bound.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

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

        # (method, route, status) -> its two children. labels() takes a lock and builds
        # its key on every call; the set of keys is small (routes x methods x statuses),
        # so each is looked up once. dict get/setdefault are atomic under the GIL, and
        # prometheus_client itself returns the same child for the same labels.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in METHODS else "other", route, status)
        children = self._children.get(key)
        if children is None:
            labels = (key[0], route, str(status))
            children = self._children.setdefault(
                key, (self.requests.labels(*labels), self.latency.labels(*labels)))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
