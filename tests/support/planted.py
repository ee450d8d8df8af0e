"""Rows written behind the services' back, for tests that need a state the services refuse
to make (an exchange request without its redeemed token): listings of many requests, and
the corruption the reconciler must find."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine, text


def plant_exchange_request(
    engine: Engine, *, token_id: uuid.UUID, user_id: str, points: int, merchant_id: str,
    reward: str | None = None, created_at: datetime | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO exchange_requests"
            " (id, token_id, user_id, merchant_id, points, reward, created_at)"
            " VALUES (:id, :token_id, :user_id, :merchant_id, :points, :reward, :created_at)"
        ), {"id": uuid.uuid4(), "token_id": token_id, "user_id": user_id,
            "merchant_id": merchant_id, "points": points, "reward": reward,
            "created_at": created_at or datetime.now(UTC)})
