"""Reading a request: JSON body (400 when malformed) validated by a pydantic model (422)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity are not JSON numbers


def json_body() -> Any:
    """The parsed body, whatever the Content-Type claims (clients are lenient about it)."""
    raw = request.get_data(cache=True)  # werkzeug answers 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "bad_request", {"reason": "malformed JSON"}) from None


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
