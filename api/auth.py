"""Bearer authentication (docs/api.md, "Authentication"). Roles are exact: ``admin``
implies neither ``merchant`` nor ``user``."""

from __future__ import annotations

from flask import current_app, g, request

from api.errors import ApiError
from shared import jwt_tokens
from shared.jwt_tokens import Principal

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="exchange-tokens"'}


def authenticate(role: str) -> Principal:
    """The caller, who must hold ``role``: 401 without a valid token, 403 without the role."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", {"reason": "missing bearer token"}, CHALLENGE)
    try:
        principal = current_app.extensions["verifier"].verify(token.strip())
    except jwt_tokens.InvalidToken:
        raise ApiError(401, "unauthorized", {"reason": "invalid token"}, CHALLENGE) from None
    g.principal = principal
    if role not in principal.roles:
        raise ApiError(403, "forbidden", {"required_role": role})
    return principal
