"""Issue a token: sweep the user's expired tokens, debit, create the token, record TokenIssued."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from schemas.events import TokenIssued
from shared.codes import new_code
from shared.errors import InsufficientPoints, TooManyActiveTokens
from shared.persistence.database import retry_transaction, unit_of_work
from shared.persistence.outbox import record_events
from shared.persistence.tables import Account, LedgerEntry, Token
from shared.services.deps import Deps
from shared.services.restore import EXPIRED, expired_condition, log_restored, restore_tokens
from shared.services.views import Issued, Restored, TokenView

log = logging.getLogger("exchange_tokens.issue")


def issue_in(
    session: Session, deps: Deps, user_id: str, points: int, reward: str | None
) -> tuple[Issued | None, list[Restored], Exception | None]:
    """The issue, in the caller's transaction. Returns (result, restored, refusal): on a
    refusal the caller still commits, so the sweep that ran first is kept."""
    restored = restore_tokens(
        session, deps.clock, expired_condition(deps.clock) & (Token.user_id == user_id), EXPIRED
    )
    # Lock the account row: concurrent issues of one user queue here, so the active-token
    # count below sees every token committed before us.
    row = session.execute(
        select(
            Account.balance,
            select(func.count())
            .where(Token.user_id == user_id, Token.status == "active")
            .scalar_subquery(),
            deps.clock.now(),
        )
        .where(Account.user_id == user_id)
        .with_for_update(of=Account)
    ).first()
    balance, active, now = (row[0], row[1], row[2]) if row else (0, 0, None)
    if balance < points:
        return None, restored, InsufficientPoints(balance=balance, points=points)
    if active >= deps.max_active_tokens:
        return None, restored, TooManyActiveTokens(limit=deps.max_active_tokens)
    # Conditional debit: the WHERE is the overdraft guard even if the check above were wrong.
    new_balance = session.execute(
        update(Account)
        .where(Account.user_id == user_id, Account.balance >= points)
        .values(balance=Account.balance - points, updated_at=now)
        .returning(Account.balance)
    ).scalar_one_or_none()
    if new_balance is None:
        return None, restored, InsufficientPoints(balance=balance, points=points)
    token_id = uuid.uuid4()
    code = new_code()
    expires_at = now + timedelta(seconds=deps.token_ttl_seconds)
    session.execute(
        insert(Token).values(
            id=token_id, code=code, user_id=user_id, points=points, reward=reward,
            status="active", created_at=now, expires_at=expires_at,
        )
    )
    session.execute(
        insert(LedgerEntry).values(
            user_id=user_id, amount=-points, kind="debit", reason="token issued",
            token_id=token_id, token_code=code, created_at=now,
        )
    )
    record_events(
        session,
        [TokenIssued(token_id=token_id, user_id=user_id, points=points, expires_at=expires_at,
                     occurred_at=now)],
    )
    token = TokenView(
        id=token_id, code=code, user_id=user_id, points=points, reward=reward, status="active",
        created_at=now, expires_at=expires_at, redeemed_at=None, merchant_id=None, as_of=now,
    )
    return Issued(token=token, balance=new_balance), restored, None


def log_issued(issued: Issued) -> None:
    t = issued.token
    log.info(
        "token created",
        extra={"token_id": str(t.id), "user_id": t.user_id, "points": t.points,
               "expires_at": t.expires_at.isoformat()},
    )


@retry_transaction()
def issue(deps: Deps, user_id: str, points: int, reward: str | None = None) -> Issued:
    """Turn ``points`` of ``user_id``'s balance into a new active token.

    Raises :class:`InsufficientPoints` or :class:`TooManyActiveTokens`; the user's expired
    tokens are restored first either way.
    """
    with unit_of_work(deps.session_factory) as session:
        result, restored, refusal = issue_in(session, deps, user_id, points, reward)
        session.commit()
    log_restored(restored)
    if refusal is not None:
        raise refusal
    assert result is not None
    log_issued(result)
    return result
