"""Redeem a code at a merchant: the token is used up and TokenRedeemed recorded."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schemas.events import TokenRedeemed
from shared.errors import DomainError, TokenAlreadyRedeemed, TokenNotFound
from shared.expiry_rules import due, redeemable
from shared.persistence.outbox import record_events
from shared.persistence.tables import LedgerEntry, Token
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.lookup import gone, refund_and_owner, settled_fate
from shared.services.refund import EXPIRED, log_refunds, refund_tokens
from shared.services.views import Refund, TokenView

log = logging.getLogger("exchange_tokens.redeem")


def redeem_in(
    session: Session, deps: Deps, code: str, merchant_id: str
) -> tuple[TokenView | None, list[Refund], DomainError | None]:
    """:func:`redeem` inside the caller's transaction (an Idempotency-Key's, api/): the
    redeemed token or the refusal, and the owner's expired tokens restored on the way.
    Commits nothing; the caller commits, then logs and raises."""
    token: TokenView | None = None
    restored: list[Refund] = []
    refusal: DomainError | None = None
    past_expiry = None
    owner: str | None = None  # whose expired tokens this validation sweeps
    now = deps.clock.now()
    row = session.execute(
        update(Token)
        .where(Token.code == code, redeemable(now))
        .values(status="redeemed", redeemed_at=now, merchant_id=merchant_id)
        .returning(*Token.__table__.columns, now.label("as_of"))
    ).first()
    if row is not None:
        token = TokenView.from_row(row)
        record_events(
            session,
            [TokenRedeemed(token_id=token.id, user_id=token.user_id, points=token.points,
                           merchant_id=merchant_id, reward=token.reward,
                           redeemed_at=token.redeemed_at, occurred_at=token.as_of)],
        )
        owner = token.user_id
    else:
        existing = session.execute(
            select(Token.id, Token.user_id, Token.status, Token.points)
            .where(Token.code == code)
        ).first()
        if existing is None:
            # A restored token's owner is still known (its refund row): validating its
            # code sweeps that owner's expired tokens, as for any other known code.
            found = refund_and_owner(session, LedgerEntry.token_code == code)
            refusal, owner = found or (TokenNotFound("no token has this code"), None)
        elif existing.status == "redeemed":
            refusal = TokenAlreadyRedeemed("this token was already redeemed")
            owner = existing.user_id
        else:  # active but past its expiry: the refund is certain; apply it now
            refusal = gone(existing.points, EXPIRED)
            owner = existing.user_id
            past_expiry = existing
    if owner is not None:  # the original system's "cleanup on validation"
        # Holding the redeemed token, take the owner's others with SKIP LOCKED: an
        # expiry batch holding one of them may be waiting for the token we hold
        # (tokens are locked in (expires_at, id) order, and ours came first), a
        # deadlock. What it holds it refunds. Holding nothing (a refusal), wait in
        # that order like everyone else: the past-expiry token must be settled here.
        restored = refund_tokens(
            session, deps.clock, due(deps.clock.now()) & (Token.user_id == owner),
            EXPIRED, skip_locked=row is not None,
        )
        if past_expiry is not None and all(r.token_id != past_expiry.id for r in restored):
            # A concurrent redeem or cancel won the row: say what really happened.
            refusal = settled_fate(
                session, Token.code == code, LedgerEntry.token_code == code,
                past_expiry.points,
            )
    return token, restored, refusal


@retry_transaction()
def redeem(deps: Deps, code: str, merchant_id: str) -> TokenView:
    """Redeem ``code`` for ``merchant_id``: succeeds iff the token is active and the
    database's ``now() < expires_at``.

    Raises :class:`TokenNotFound`, :class:`TokenAlreadyRedeemed`, or
    :class:`~shared.errors.TokenExpired` (a token past its expiry is refunded right here
    if no worker did yet, and the answer says so).
    """
    with unit_of_work(deps.session_factory) as session:
        token, restored, refusal = redeem_in(session, deps, code, merchant_id)
        session.commit()
    log_refunds(restored)
    if refusal is not None:
        raise refusal
    assert token is not None
    log_redeemed(token, merchant_id)
    return token


def log_redeemed(token: TokenView, merchant_id: str) -> None:
    log.info(
        "token redeemed",
        extra={"token_id": str(token.id), "user_id": token.user_id, "points": token.points,
               "merchant_id": merchant_id},
    )
