"""A merchant's look at a code before redeeming it: what :func:`~shared.services.redeem`
would answer now, without changing anything."""

from __future__ import annotations

from sqlalchemy import select

from shared.errors import TokenAlreadyRedeemed, TokenNotFound
from shared.persistence.tables import LedgerEntry, Token
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps
from shared.services.lookup import gone, refund_of
from shared.services.views import TokenView


def preview(deps: Deps, code: str) -> TokenView:
    """The token ``code`` names, if redeem would take it now (active and the database's
    ``now() < expires_at``, redeem's own condition).

    Raises what redeem would: :class:`TokenNotFound`, :class:`TokenAlreadyRedeemed`, or
    :class:`~shared.errors.TokenExpired` (a token past its expiry, whether or not its
    refund has been applied: the refund is certain). Read-only: nothing is redeemed,
    swept or refunded here; the transaction is rolled back.
    """
    with unit_of_work(deps.session_factory) as session:
        row = session.execute(
            select(*Token.__table__.columns, deps.clock.now().label("as_of"))
            .where(Token.code == code)
        ).first()
        if row is None:
            raise refund_of(session, LedgerEntry.token_code == code) \
                or TokenNotFound("no token has this code")
        token = TokenView.from_row(row)
        if token.status == "redeemed":
            raise TokenAlreadyRedeemed("this token was already redeemed")
        if token.expires_at <= token.as_of:
            raise gone(token.points, "expired")
        return token
