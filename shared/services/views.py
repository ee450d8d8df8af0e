"""What services return: plain frozen dataclasses, free of SQLAlchemy sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TokenView:
    id: uuid.UUID
    code: str
    user_id: str
    points: int
    reward: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    merchant_id: str | None
    as_of: datetime  # the database's "now" when read: expires_in is counted from it

    @classmethod
    def from_row(cls, row: Any) -> TokenView:
        """From a row of every ``exchange_tokens`` column plus ``as_of``."""
        return cls(
            id=row.id, code=row.code, user_id=row.user_id, points=row.points,
            reward=row.reward, status=row.status, created_at=row.created_at,
            expires_at=row.expires_at, redeemed_at=row.redeemed_at,
            merchant_id=row.merchant_id, as_of=row.as_of,
        )

    @property
    def expires_in(self) -> int:
        """Whole seconds left, rounded down; 0 when none (or once redeemed)."""
        if self.status != "active":
            return 0
        return max(0, int((self.expires_at - self.as_of).total_seconds()))


@dataclass(frozen=True)
class Refund:
    """One token's points put back on its owner's balance (or, in a dry run, that would be)."""

    token_id: uuid.UUID
    user_id: str
    points: int
    reason: str  # "expired" or "cancelled"
    expires_at: datetime | None
    restored_at: datetime
    balance: int | None = None  # the owner's balance after this refund (None in a dry run)


@dataclass(frozen=True)
class Issued:
    token: TokenView
    balance: int


@dataclass(frozen=True)
class Cancelled:
    token_id: uuid.UUID
    points_restored: int
    balance: int


@dataclass(frozen=True)
class Status:
    balance: int
    active: list[TokenView]
    redeemed: list[TokenView]
    restored: list[Refund]


@dataclass(frozen=True)
class ExchangeRequestView:
    id: uuid.UUID
    token_id: uuid.UUID
    user_id: str
    merchant_id: str
    points: int
    reward: str | None
    created_at: datetime
