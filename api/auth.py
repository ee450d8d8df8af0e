"""Bearer authentication (docs/api.md, "Authentication"). Roles are exact: ``admin``
implies neither ``merchant`` nor ``user``; ``operator`` does not imply ``viewer``."""

from __future__ import annotations

from flask import current_app, g, request

from api.errors import ApiError
from shared import jwt_tokens
from shared.jwt_tokens import Principal

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="exchange-tokens"'}


def authenticate(role: str, *alternatives: str) -> Principal:
    """The caller, who must hold ``role`` or one of ``alternatives``: 401 without a valid
    token, 403 without any of them. Roles are matched exactly, never implied. A 401's
    ``details.reason`` is ``missing``, ``invalid`` or ``expired``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", {"reason": "missing"}, CHALLENGE)
    try:
        principal = current_app.extensions["verifier"].verify(token.strip())
    except jwt_tokens.InvalidToken as exc:
        raise ApiError(401, "unauthorized", {"reason": exc.reason}, CHALLENGE) from None
    g.principal = principal
    if role not in principal.roles and not any(r in principal.roles for r in alternatives):
        details: dict[str, object] = {"required_role": role}
        if alternatives:
            details["accepted_roles"] = [role, *alternatives]
        raise ApiError(403, "forbidden", details)
    return principal
