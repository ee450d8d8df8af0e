"""Exchange requests: what a merchant's redemption becomes (created by a worker)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.events import TokenRedeemed
from shared.persistence.tables import ExchangeRequest
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.views import ExchangeRequestView

LATEST = 100


@retry_transaction()
def create_exchange_request(deps: Deps, event: TokenRedeemed) -> bool:
    """Record the exchange request of a redemption. Idempotent by token id: a duplicate or
    replayed TokenRedeemed finds the row there and changes nothing. True if created."""
    with unit_of_work(deps.session_factory) as session:
        created = session.execute(
            pg_insert(ExchangeRequest)
            .values(
                id=uuid.uuid5(uuid.NAMESPACE_URL, f"exchange-request:{event.token_id}"),
                token_id=event.token_id,
                user_id=event.user_id,
                merchant_id=event.merchant_id,
                points=event.points,
                reward=event.reward,
                created_at=event.redeemed_at or event.occurred_at,
            )
            .on_conflict_do_nothing(index_elements=[ExchangeRequest.token_id])
            .returning(ExchangeRequest.id)
        ).first()
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
