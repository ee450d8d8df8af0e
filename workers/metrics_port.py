"""Which port the worker's metrics are served on.

Several workers may run on one host. A port nobody asked for is therefore only a
preference: the first free one of 9100..9109 is taken, then any port the system offers,
and the port served is logged so it can be scraped. A port asked for explicitly
(``--metrics-port`` or ``WORKER_METRICS_PORT``) is a promise to whoever scrapes it: if it
is taken the worker refuses to start rather than serve elsewhere.
"""

from __future__ import annotations

import errno
import logging

from prometheus_client import start_http_server

log = logging.getLogger("exchange_tokens.metrics")

DEFAULT_PORTS = range(9100, 9110)


class MetricsPortInUse(RuntimeError):
    """The explicitly asked port is served by another process."""


def _bind(port: int) -> int | None:
    """Serve /metrics on ``port`` (0: one the system picks); the port, or None if taken."""
    try:
        server, _ = start_http_server(port)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        raise
    return int(server.server_port)


def serve_metrics(port: int, explicit: bool) -> int | None:
    """Start the metrics server; the port it serves on, or None when disabled (0)."""
    if port == 0:
        log.info("worker metrics disabled")
        return None
    if explicit:
        served = _bind(port)
        if served is None:
            raise MetricsPortInUse(
                f"metrics port {port} is already in use (set by --metrics-port or "
                "WORKER_METRICS_PORT): choose another, or leave it unset to pick a free one")
    else:
        for candidate in (*DEFAULT_PORTS, 0):  # 0 always binds: the last resort
            served = _bind(candidate)
            if served is not None:
                break
    log.info("worker metrics served", extra={
        "port": served, "url": f"http://0.0.0.0:{served}/metrics"})
    return served
