"""The one line the API logs at start: where it answers, where its docs pages are, and
where the metrics are (the API's own; a worker's too when ``run-all`` started one).

gunicorn's own ``Listening at:`` is empty here: each worker binds its own socket
(SO_REUSEPORT), so the master has none to name. It is dropped (api/server.py)."""

from __future__ import annotations

import logging

log = logging.getLogger("exchange_tokens.api")


def where(port: int, worker_metrics_port: int | None = None) -> dict[str, str]:
    base = f"http://localhost:{port}"
    places = {"api": f"{base}/api/", "docs": f"{base}/apidoc/swagger/",
              "metrics": f"{base}/metrics"}
    if worker_metrics_port:
        places["worker_metrics"] = f"http://localhost:{worker_metrics_port}/metrics"
    return places


def start_line(places: dict[str, str]) -> str:
    line = f"API at {places['api']}, docs at {places['docs']}, metrics at {places['metrics']}"
    if "worker_metrics" in places:
        line += f", the worker's metrics at {places['worker_metrics']}"
    return line


def announce(port: int, worker_metrics_port: int | None = None) -> None:
    places = where(port, worker_metrics_port)
    log.info(start_line(places), extra=places)
