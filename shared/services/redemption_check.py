"""Whether the database backs a ``TokenRedeemed``: the token exists, is redeemed, by the
merchant, owner and points the event names.

The event alone proves nothing (anyone who can publish on the broker can forge one, and a
replayed letter may be stale); the token's row is the truth. Redeemed is a final state (a
redeemed token is never refunded nor deleted), so a check inside the recording transaction
cannot be overtaken by a later change.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.events import TokenRedeemed
from shared.errors import DomainError
from shared.persistence.tables import LedgerEntry, Token


class RedemptionNotInDatabase(DomainError):
    """A ``TokenRedeemed`` the database does not back: no exchange request for it."""

    code = "redemption_not_in_database"


def refusal(session: Session, event: TokenRedeemed) -> str | None:
    """Why no exchange request may be recorded for ``event``; None when the database backs
    it. Reads in the caller's transaction."""
    token = session.execute(
        select(Token.status, Token.merchant_id, Token.user_id, Token.points)
        .where(Token.id == event.token_id)
    ).first()
    if token is None:
        refunded = session.execute(
            select(LedgerEntry.reason).where(
                LedgerEntry.token_id == event.token_id, LedgerEntry.kind == "refund")
        ).first()
        if refunded is not None:
            return f"token was refunded ({refunded.reason or 'expired'}), never redeemed"
        return "token does not exist"
    if token.status != "redeemed":
        return f"token is {token.status}, not redeemed"
    if token.merchant_id != event.merchant_id:
        return "token was redeemed by another merchant"
    if token.user_id != event.user_id or token.points != event.points:
        return "token's owner or points differ from the event's"
    return None
