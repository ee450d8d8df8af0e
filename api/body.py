"""Reading a request: JSON body (400 when malformed) validated by a pydantic model (422)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity are not JSON numbers


def json_body() -> Any:
    """The parsed body, whatever the Content-Type claims (clients are lenient about it)."""
    raw = request.get_data(cache=True)  # a declared oversize body never gets here
    if len(raw) >= MAX_BODY_BYTES and _over_limit(raw):
        raise RequestEntityTooLarge()
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "bad_request", {"reason": "malformed JSON"}) from None


def _over_limit(raw: bytes) -> bool:
    """Whether the body goes past MAX_BODY_BYTES, though werkzeug returned no more.

    A declared Content-Length over the limit is refused before any read (werkzeug, and
    api/observability.py). A body without one (Transfer-Encoding: chunked) is silently cut
    at MAX_CONTENT_LENGTH by werkzeug's stream, and the cut prefix may well parse. So one
    more byte is asked of the server's own stream: only done when werkzeug handed a full
    limit of bytes, which it does without Content-Length only when the server terminates
    the stream itself (``wsgi.input_terminated``, set by gunicorn): the read cannot hang.
    """
    if len(raw) > MAX_BODY_BYTES:
        return True
    return request.content_length is None and request.input_stream.read(1) != b""


def validation_details(exc: ValidationError) -> dict[str, Any]:
    fields = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "type": err["type"],
         "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return {"fields": fields}


def parse(model: type[M]) -> M:
    data = json_body()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", validation_details(exc)) from None


def invalid(field: str, problem: str, kind: str = "value_error") -> ApiError:
    return ApiError(422, "validation_error",
                    {"fields": [{"field": field, "type": kind, "message": problem}]})
