"""The one error path: every failure becomes ``{"error": {"code", "message", "details"}}``.

Domain refusals (shared/errors.py), werkzeug's HTTP errors (404, 405, 413...), an
unreachable database and unexpected exceptions all end here, as JSON, never as HTML.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from api.messages import message
from shared import errors as domain
from shared.logs import request_id_var
from shared.persistence.transactions import is_timeout, is_unavailable

log = logging.getLogger("exchange_tokens.api")

DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.InsufficientPoints: 409,
    domain.TooManyActiveTokens: 409,
    domain.TokenNotFound: 404,
    domain.TokenAlreadyRedeemed: 409,
    domain.TokenExpired: 410,
    domain.TooManyAttempts: 429,
    domain.IdempotencyConflict: 409,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "validation_error",
    429: "too_many_attempts",
    503: "service_unavailable",
}


class ApiError(Exception):
    """A refusal decided by the HTTP layer itself (auth, body, headers)."""

    def __init__(
        self, status: int, code: str, details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.status, self.code = status, code
        self.details = details or {}
        self.headers = headers or {}


def error_response(
    status: int, code: str, details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    details = details or {}
    response = jsonify({"error": {"code": code, "message": message(code, details),
                                  "details": details}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.details, exc.headers)


def domain_status(exc: domain.DomainError) -> int:
    return DOMAIN_STATUS.get(type(exc), 409)


def _domain_error(exc: domain.DomainError) -> Response:
    status = domain_status(exc)
    headers = {}
    if isinstance(exc, domain.TooManyAttempts) and "retry_after" in exc.details:
        headers["Retry-After"] = str(exc.details["retry_after"])
    return error_response(status, exc.code, exc.details, headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "www-authenticate")}
    return error_response(status, code, {}, headers)


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, PoolTimeout) or (
            isinstance(exc, DBAPIError) and (is_unavailable(exc) or is_timeout(exc))):
        # Connect, pool and statement timeouts bound this path (shared/persistence/database.py).
        log.warning("database unavailable", extra={"error": str(exc).splitlines()[0]})
        return error_response(503, "service_unavailable", {"dependency": "database"},
                              {"Retry-After": "1"})
    # The stack goes to the log with the request id (added by the log filter); the client
    # sees only the code and that id.
    log.exception("unhandled error", extra={"request_id": request_id_var.get()})
    return error_response(500, "internal_error", {})


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(domain.DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
