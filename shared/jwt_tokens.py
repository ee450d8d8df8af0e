"""Bearer tokens: HS256 JWTs with ``sub``, ``exp`` and ``roles`` (docs/api.md, "Authentication")."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

# Exact roles: none implies another (admin is not merchant, operator is not viewer).
ROLES = ("user", "merchant", "admin", "operator", "viewer")
LEEWAY_SECONDS = 10  # tolerate small clock drift between the issuer and us
MAX_SUB_LENGTH = 200  # a user id: the accounts' column


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    roles: frozenset[str]


class InvalidToken(Exception):
    """A token refused: ``reason`` is ``invalid`` (forged, malformed, bad claims) or
    ``expired`` (a front end then knows to get a new one)."""

    reason = "invalid"


class ExpiredToken(InvalidToken):
    reason = "expired"


def encode(secret: str, sub: str, roles: list[str] | None = None, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + ttl_seconds, "roles": roles or ["user"]}
    return jwt.encode(claims, secret, algorithm="HS256")


def _verify(secret: str, token: str) -> tuple[Principal, float]:
    """The principal and the ``exp`` of a token whose signature and claims check out."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub"]},
        )
        exp = float(claims["exp"])  # an integer of 400 digits overflows here
    except jwt.ExpiredSignatureError as exc:
        raise ExpiredToken(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001
        # Whatever a crafted token makes the parser raise (PyJWT's errors, but also
        # overflow, recursion or encoding errors) is a refused token, never a 500.
        raise InvalidToken(f"{type(exc).__name__}: {exc}") from exc
    sub = claims.get("sub")
    roles = claims.get("roles", ["user"])
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH:
        raise InvalidToken("sub must be a non-empty string")
    if not sub.isprintable():
        # NUL, control characters or a lone surrogate: no account can be named so, and
        # neither the database nor the logs could take them.
        raise InvalidToken("sub must be printable text")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles must be a list of strings")
    return Principal(sub=sub, roles=_role_set(tuple(roles))), exp


@functools.lru_cache(maxsize=64)
def _role_set(roles: tuple[str, ...]) -> frozenset[str]:
    """One frozenset per combination of roles, shared by every principal that has it: a
    frozenset is ~200 bytes, a remembered token's largest part after the token itself."""
    return frozenset(roles)


def decode(secret: str, token: str) -> Principal:
    """Verify signature and expiry; ``exp`` and ``sub`` are required. Raises InvalidToken."""
    return _verify(secret, token)[0]


class TokenVerifier:
    """Verifies bearer tokens for one app, remembering the last ``capacity`` it accepted.

    A client sends the same token with every request until it expires, and checking it
    (base64, JSON, HMAC, claims) was a tenth of an issue's CPU. A remembered token is the
    exact string that passed every check, so only its expiry can change: that is checked
    again, with the same leeway, on every use. Refused tokens are not remembered (a flood
    of forged ones cannot evict good ones any faster than good ones arrive). The LRU is
    functools', which is thread-safe.

    Capacity: an LRU smaller than the set of tokens in use, seen in turn, misses on every
    request; 4,096 did under a benchmark spreading 6,400 users over two workers. 16,384
    entries of about 500 bytes: at most ~8 MB per worker.
    """

    def __init__(self, secret: str, capacity: int = 16384,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._verified = functools.lru_cache(maxsize=capacity)(
            functools.partial(_verify, secret))

    def verify(self, token: str) -> Principal:
        principal, exp = self._verified(token)
        if self._clock() > exp + LEEWAY_SECONDS:
            raise ExpiredToken("Signature has expired")
        return principal
