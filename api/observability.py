"""Per request: a request id (taken from ``X-Request-ID`` when sane), bound to the log
context so service log lines and outbox events carry it; one JSON access log line; the
request counter and latency histogram by route template and status."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.body import MAX_BODY_BYTES
from shared.logs import request_id_var

access_log = logging.getLogger("exchange_tokens.access")

SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _request_id() -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex


def _start() -> None:
    g.started = time.perf_counter()
    g.request_id = _request_id()
    # Bound for the request's log lines and outbox events (shared/logs.py), reset on
    # teardown; the variable itself, not logs.bound(): a generator context manager held
    # across two hooks cost more than the rest of this hook.
    g.request_id_token = request_id_var.set(g.request_id)
    # Refuse a declared oversize body before any work (a chunked one, with no length to
    # check here, is refused when read: api/body.py).
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()


def _finish(response: Response) -> Response:
    rid = g.get("request_id") or _request_id()
    response.headers["X-Request-ID"] = rid
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    current_app.extensions["metrics"].observe(request.method, route, response.status_code,
                                              elapsed)
    principal = g.get("principal")
    access_log.info(
        "request",
        extra={"method": request.method, "path": request.path, "route": route,
               "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
               "request_id": rid, "user_id": principal.sub if principal else None},
    )
    return response


def _release(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def install(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_release)
