"""What the views share: the app's container and metrics, the Idempotency-Key header."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app, jsonify, request

from api.body import invalid
from api.errors import error_response
from api.idempotency import Outcome, Scope, fingerprint, is_stored_refusal
from api.metrics import Metrics
from shared.bootstrap import Container
from shared.services.deps import Deps

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, as Stripe's keys


def container() -> Container:
    return current_app.extensions["container"]


def deps() -> Deps:
    return container().deps


def metrics() -> Metrics:
    return current_app.extensions["metrics"]


def idempotency_scope(caller: str, endpoint: str, *request_parts: Any) -> Scope | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not KEY_PATTERN.match(key):
        raise invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
    return Scope(caller=caller, endpoint=endpoint, key=key,
                 request_hash=fingerprint(endpoint, *request_parts))


def respond(outcome: Outcome) -> Response:
    if is_stored_refusal(outcome):  # a refusal, answered again as the error path words it
        error = outcome.body["error"]
        return error_response(outcome.status, error["code"], error["details"],
                              {"Idempotent-Replayed": "true"})
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
