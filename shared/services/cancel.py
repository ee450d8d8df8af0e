"""Cancel an active token at its owner's request: the same refund as expiry, at once."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared.errors import DomainError, TokenAlreadyRedeemed, TokenNotFound
from shared.expiry_rules import due, redeemable
from shared.persistence.tables import LedgerEntry, Token
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.lookup import gone, refund_of_token, settled_fate
from shared.services.refund import (
    CANCELLED,
    EXPIRED,
    log_refunds,
    refund_tokens,
)
from shared.services.views import Cancelled


@retry_transaction()
def cancel(deps: Deps, user_id: str, token_id: uuid.UUID) -> Cancelled:
    """Cancel ``user_id``'s active token; returns the points restored and the new balance.

    Raises :class:`TokenNotFound` (also for another user's token),
    :class:`TokenAlreadyRedeemed`, or :class:`~shared.errors.TokenExpired` (already
    expired or cancelled; an expired one not yet refunded is refunded here).
    """
    refusal: DomainError | None = None
    with unit_of_work(deps.session_factory) as session:
        mine = (Token.id == token_id) & (Token.user_id == user_id)
        restored = refund_tokens(
            session, deps.clock,
            mine & redeemable(deps.clock.now()),
            CANCELLED,
        )
        if not restored:
            existing = session.execute(select(Token.status, Token.points).where(mine)).first()
            if existing is None:
                refusal = refund_of_token(session, token_id, user_id) or TokenNotFound(
                    "no such token"
                )
            elif existing.status == "redeemed":
                refusal = TokenAlreadyRedeemed("this token was already redeemed")
            else:
                restored = refund_tokens(
                    session, deps.clock, mine & due(deps.clock.now()), EXPIRED
                )
                refusal = gone(existing.points, EXPIRED) if restored else settled_fate(
                    # A concurrent redeem or expiry won the row: say what really happened.
                    session, mine,
                    (LedgerEntry.token_id == token_id) & (LedgerEntry.user_id == user_id),
                    existing.points,
                )
        session.commit()
    log_refunds(restored)
    if refusal is not None:
        raise refusal
    r = restored[0]
    assert r.balance is not None
    return Cancelled(token_id=r.token_id, points_restored=r.points, balance=r.balance)
