"""The reads the API needs. None changes anything, except :func:`status`, which sweeps the
user's expired tokens first so it never shows an expired token as active."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from shared.errors import TokenNotFound
from shared.expiry_rules import due, is_due
from shared.persistence.tables import Account, LedgerEntry, Token
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.lookup import gone, refund_of_token
from shared.services.refund import EXPIRED, log_refunds, refund_tokens
from shared.services.views import Refund, Status, TokenView

RECENT = 20


def _balance(session: Session, user_id: str) -> int:
    value = session.execute(select(Account.balance).where(Account.user_id == user_id)).scalar()
    return int(value or 0)


def balance(deps: Deps, user_id: str) -> int:
    """The user's balance; 0 for a user never seen."""
    with unit_of_work(deps.session_factory) as session:
        return _balance(session, user_id)


def _tokens(deps: Deps) -> Select[Any]:
    return select(*Token.__table__.columns, deps.clock.now().label("as_of"))


def get_token(deps: Deps, user_id: str, token_id: uuid.UUID) -> TokenView:
    """The owner's token. Raises :class:`TokenNotFound` (also for another user's token) or
    :class:`~shared.errors.TokenExpired` (past its expiry, restored or about to be: certain
    either way). Changes nothing."""
    with unit_of_work(deps.session_factory) as session:
        row = session.execute(
            _tokens(deps).where(Token.id == token_id, Token.user_id == user_id)
        ).first()
        if row is None:
            raise refund_of_token(session, token_id, user_id) or TokenNotFound("no such token")
        token = TokenView.from_row(row)
        if is_due(token.status, token.expires_at, token.as_of):
            raise gone(token.points, EXPIRED)
        return token


@retry_transaction()
def status(deps: Deps, user_id: str) -> Status:
    """Balance, active tokens (soonest expiry first), and the latest redeemed and restored."""
    with unit_of_work(deps.session_factory) as session:
        restored_now = refund_tokens(
            session, deps.clock, due(deps.clock.now()) & (Token.user_id == user_id),
            EXPIRED,
        )
        active = session.execute(
            _tokens(deps)
            .where(Token.user_id == user_id, Token.status == "active")
            .order_by(Token.expires_at, Token.id)
        ).all()
        redeemed = session.execute(
            _tokens(deps)
            .where(Token.user_id == user_id, Token.status == "redeemed")
            .order_by(Token.redeemed_at.desc(), Token.id)
            .limit(RECENT)
        ).all()
        refunds = session.execute(
            select(LedgerEntry.token_id, LedgerEntry.amount, LedgerEntry.reason,
                   LedgerEntry.created_at)
            .where(LedgerEntry.user_id == user_id, LedgerEntry.kind == "refund")
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
            .limit(RECENT)
        ).all()
        result = Status(
            balance=_balance(session, user_id),
            active=[TokenView.from_row(r) for r in active],
            redeemed=[TokenView.from_row(r) for r in redeemed],
            restored=[
                Refund(token_id=r.token_id, user_id=user_id, points=r.amount,
                         reason=r.reason or EXPIRED, expires_at=None, restored_at=r.created_at)
                for r in refunds
            ],
        )
        session.commit()
    log_refunds(restored_now)
    return result
