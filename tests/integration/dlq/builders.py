"""Events as the outbox writes them, and reading what a command logged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from click.testing import Result

from schemas.events import TokenExpired, TokenIssued, TokenRedeemed
from shared.messaging.topology import delay_routing_key


def logged(result: Result) -> list[dict[str, Any]]:
    """The JSON log lines a command wrote on stderr."""
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def issued(token_id: uuid.UUID | None = None, user: str = "u-1", points: int = 10) -> dict[str, Any]:
    return TokenIssued(token_id=token_id or uuid.uuid4(), user_id=user, points=points,
                       expires_at=datetime.now(UTC)).model_dump(mode="json")


def redeemed(token_id: uuid.UUID | None = None, user: str = "u-1", points: int = 10) -> dict[str, Any]:
    return TokenRedeemed(token_id=token_id or uuid.uuid4(), user_id=user, points=points,
                         merchant_id="m-1").model_dump(mode="json")


def expiry_command(token_id: uuid.UUID, user: str, points: int, expires_at: datetime) -> dict[str, Any]:
    return TokenExpired(token_id=token_id, user_id=user, points=points,
                        expires_at=expires_at).model_dump(mode="json")


def expire_routing_key() -> str:
    """The routing key a timer leaves the delay chain with (the TokenExpired command)."""
    return delay_routing_key(0, "expire")
