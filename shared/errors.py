"""The domain's error tree. The API maps it to HTTP in one place (api/errors.py)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every refusal a service can answer. ``code`` is the contract's error code."""

    code = "domain_error"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.details: dict[str, Any] = details


class InsufficientPoints(DomainError):
    code = "insufficient_points"


class TooManyActiveTokens(DomainError):
    code = "too_many_active_tokens"


class TokenNotFound(DomainError):
    code = "token_not_found"


class TokenAlreadyRedeemed(DomainError):
    code = "token_already_redeemed"


class TokenExpired(DomainError):
    """The token expired or was cancelled; its points were (or are now) restored.

    ``details``: ``points_restored`` and ``reason`` (``expired`` or ``cancelled``).
    """

    code = "token_expired"


class TooManyAttempts(DomainError):
    code = "too_many_attempts"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
