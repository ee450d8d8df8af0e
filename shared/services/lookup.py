"""Finding what became of a token that is no longer live (the ledger keeps its id and code)."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from shared.errors import DomainError, TokenAlreadyRedeemed, TokenExpired
from shared.persistence.tables import LedgerEntry, Token


def refund_and_owner(
    session: Session, condition: ColumnElement[bool]
) -> tuple[TokenExpired, str] | None:
    """The 410 for a token that was restored (expired or cancelled), and whose it was."""
    row = session.execute(
        select(LedgerEntry.amount, LedgerEntry.reason, LedgerEntry.user_id).where(
            LedgerEntry.kind == "refund", condition
        )
    ).first()
    if row is None:
        return None
    return gone(row.amount, row.reason), row.user_id


def refund_of(session: Session, condition: ColumnElement[bool]) -> TokenExpired | None:
    """The 410 for a token that was restored (expired or cancelled), if it was."""
    found = refund_and_owner(session, condition)
    return found[0] if found else None


def refund_of_token(session: Session, token_id: uuid.UUID, user_id: str | None) -> TokenExpired | None:
    cond = LedgerEntry.token_id == token_id
    if user_id is not None:
        cond = cond & (LedgerEntry.user_id == user_id)
    return refund_of(session, cond)


def gone(points: int, reason: str | None) -> TokenExpired:
    reason = reason or "expired"
    return TokenExpired(
        f"token {reason}; its {points} points were restored",
        points_restored=points,
        reason=reason,
    )


def settled_fate(
    session: Session, live: ColumnElement[bool], refunded: ColumnElement[bool], points: int
) -> DomainError:
    """The answer for a token we saw active and past its expiry but did not restore.

    Each transaction has its own ``now()``: one that began a moment earlier may still have
    redeemed or cancelled the token. Our restore waited for that transaction's row lock,
    so this fresh read (READ COMMITTED: a new snapshot per statement) sees who won.
    """
    if session.execute(select(Token.status).where(live)).scalar() == "redeemed":
        return TokenAlreadyRedeemed("this token was already redeemed")
    return refund_of(session, refunded) or gone(points, None)
