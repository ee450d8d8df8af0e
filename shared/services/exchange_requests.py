"""Exchange requests: what a merchant's redemption becomes (created by a worker)."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.events import TokenRedeemed
from shared.persistence.tables import ExchangeRequest, Token
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.redemption_check import RedemptionNotInDatabase, refusal
from shared.services.views import ExchangeRequestView

LATEST = 100


@retry_transaction()
def create_exchange_request(deps: Deps, event: TokenRedeemed) -> bool:
    """Record the exchange request of a redemption the database shows: the token redeemed
    by ``event.merchant_id``, with the event's owner and points. Idempotent by token id: a
    duplicate or replayed TokenRedeemed finds the row there and changes nothing. True if
    created; :class:`RedemptionNotInDatabase` (nothing written) for any other event.

    One statement inserts only when the token row matches, so the check and the write are
    the same transaction; the row's facts (reward, redeemed_at) are the database's."""
    request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"exchange-request:{event.token_id}")
    backed = (
        select(
            literal(request_id), Token.id, Token.user_id, Token.merchant_id, Token.points,
            Token.reward, Token.redeemed_at,
        )
        .where(and_(
            Token.id == event.token_id, Token.status == "redeemed",
            Token.merchant_id == event.merchant_id, Token.user_id == event.user_id,
            Token.points == event.points,
        ))
    )
    with unit_of_work(deps.session_factory) as session:
        created = session.execute(
            pg_insert(ExchangeRequest)
            .from_select(
                ["id", "token_id", "user_id", "merchant_id", "points", "reward", "created_at"],
                backed,
            )
            .on_conflict_do_nothing(index_elements=[ExchangeRequest.token_id])
            .returning(ExchangeRequest.id)
        ).first()
        if created is None:
            exists = session.execute(
                select(ExchangeRequest.id).where(ExchangeRequest.token_id == event.token_id)
            ).first()
            if exists is None:
                why = refusal(session, event) or "token changed while it was checked"
                raise RedemptionNotInDatabase(why, token_id=str(event.token_id))
        session.commit()
    return created is not None


def list_exchange_requests(deps: Deps, user_id: str) -> list[ExchangeRequestView]:
    """The user's latest exchange requests, newest first."""
    with unit_of_work(deps.session_factory) as session:
        rows = session.execute(
            select(ExchangeRequest)
            .where(ExchangeRequest.user_id == user_id)
            .order_by(ExchangeRequest.created_at.desc(), ExchangeRequest.id)
            .limit(LATEST)
        ).scalars().all()
        return [
            ExchangeRequestView(
                id=r.id, token_id=r.token_id, user_id=r.user_id, merchant_id=r.merchant_id,
                points=r.points, reward=r.reward, created_at=r.created_at,
            )
            for r in rows
        ]
