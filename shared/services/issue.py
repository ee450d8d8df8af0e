"""Issue a token: sweep the user's expired tokens, debit, create the token, record TokenIssued."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from schemas.events import TokenIssued
from shared.codes import new_code
from shared.errors import InsufficientPoints, TooManyActiveTokens
from shared.persistence.database import retry_transaction, unit_of_work
from shared.persistence.outbox import event_headers
from shared.persistence.tables import Account, Token
from shared.services.deps import Deps
from shared.services.restore import EXPIRED, expired_condition, log_restored, restore_tokens
from shared.services.views import Issued, Restored, TokenView

log = logging.getLogger("exchange_tokens.issue")

_ISSUE_SQL = text("""
    WITH debit AS (
        UPDATE accounts SET balance = balance - :points, updated_at = :now
        WHERE user_id = :user_id AND balance >= :points
        RETURNING balance
    ), token AS (
        INSERT INTO exchange_tokens
            (id, code, user_id, points, reward, status, created_at, expires_at)
        SELECT :token_id, :code, :user_id, :points, :reward, 'active', :now, :expires_at
        FROM debit
    ), entry AS (
        INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)
        SELECT :user_id, -CAST(:points AS bigint), 'debit', 'token issued', :token_id, :code, :now
        FROM debit
    ), event AS (
        INSERT INTO outbox (event_id, event_type, payload, headers)
        SELECT :event_id, 'TokenIssued', CAST(:payload AS jsonb), CAST(:headers AS jsonb)
        FROM debit
    )
    SELECT balance FROM debit
""")


def issue_in(
    session: Session, deps: Deps, user_id: str, points: int, reward: str | None
) -> tuple[Issued | None, list[Restored], Exception | None]:
    """The issue, in the caller's transaction. Returns (result, restored, refusal): on a
    refusal the caller still commits, so the sweep that ran first is kept."""
    now_sql = deps.clock.now()
    mine = (Token.user_id == user_id) & (Token.status == "active")
    # Lock the account row first: concurrent issues of one user queue here, so the counts
    # below see every token committed before us. One round trip also tells whether the
    # user has expired tokens to sweep, so the common case pays for no sweep at all.
    row = session.execute(
        select(
            Account.balance,
            select(func.count()).where(mine, Token.expires_at > now_sql).scalar_subquery(),
            select(Token.id).where(mine, Token.expires_at <= now_sql).exists(),
            now_sql,
        )
        .where(Account.user_id == user_id)
        .with_for_update(of=Account)
    ).first()
    if row is None:  # never credited: nothing to sweep, nothing to spend
        return None, [], InsufficientPoints(balance=0, points=points)
    balance, active, has_expired, now = row
    restored: list[Restored] = []
    if has_expired:
        # The original system's "cleanup on create". SKIP LOCKED: a token another
        # transaction holds (a worker expiring it right now) is left to it, so we never
        # wait on a token while holding the account: no lock-order deadlock.
        restored = restore_tokens(
            session, deps.clock, expired_condition(deps.clock) & (Token.user_id == user_id),
            EXPIRED, skip_locked=True,
        )
        if restored and restored[-1].balance is not None:
            balance = restored[-1].balance
    if balance < points:
        return None, restored, InsufficientPoints(balance=balance, points=points)
    if active >= deps.max_active_tokens:
        return None, restored, TooManyActiveTokens(limit=deps.max_active_tokens)
    token_id = uuid.uuid4()
    code = new_code()
    expires_at = now + timedelta(seconds=deps.token_ttl_seconds)
    event = TokenIssued(token_id=token_id, user_id=user_id, points=points,
                        expires_at=expires_at, occurred_at=now)
    # Debit, token, ledger row and outbox event in ONE statement (one round trip): every
    # insert reads from the conditional debit, so nothing is written unless it succeeded.
    # The debit's WHERE is the overdraft guard even if the check above were wrong.
    new_balance = session.execute(
        _ISSUE_SQL,
        {"user_id": user_id, "points": points, "now": now, "token_id": token_id, "code": code,
         "reward": reward, "expires_at": expires_at, "event_id": event.event_id,
         "payload": event.model_dump_json(), "headers": json.dumps(event_headers())},
    ).scalar_one_or_none()
    if new_balance is None:
        return None, restored, InsufficientPoints(balance=balance, points=points)
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
