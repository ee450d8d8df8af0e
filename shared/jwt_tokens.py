"""Bearer tokens: HS256 JWTs with ``sub``, ``exp`` and ``roles`` (CONTRACT.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ROLES = ("user", "merchant", "admin")
LEEWAY_SECONDS = 10  # tolerate small clock drift between the issuer and us


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[str]


class InvalidToken(Exception):
    pass


def encode(secret: str, sub: str, roles: list[str] | None = None, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + ttl_seconds, "roles": roles or ["user"]}
    return jwt.encode(claims, secret, algorithm="HS256")


def decode(secret: str, token: str) -> Principal:
    """Verify signature and expiry; ``exp`` and ``sub`` are required. Raises InvalidToken."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub = claims.get("sub")
    roles = claims.get("roles", ["user"])
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise InvalidToken("sub must be a non-empty string")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles must be a list of strings")
    return Principal(sub=sub, roles=frozenset(roles))
