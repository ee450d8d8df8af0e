"""Credit points to an account (admin)."""

from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.persistence.tables import Account, LedgerEntry
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps

log = logging.getLogger("exchange_tokens.credit")


def credit_in(session: Session, deps: Deps, user_id: str, points: int, reason: str | None) -> int:
    """The credit itself, in the caller's transaction (the API adds its idempotency row)."""
    now = deps.clock.now()  # an SQL expression: the transaction's time, no extra round trip
    upsert = pg_insert(Account).values(
        user_id=user_id, balance=points, created_at=now, updated_at=now
    )
    stmt = upsert.on_conflict_do_update(
        index_elements=[Account.user_id],
        set_={"balance": Account.balance + upsert.excluded.balance, "updated_at": now},
    ).returning(Account.balance)
    new_balance: int = session.execute(stmt).scalar_one()
    session.execute(
        insert(LedgerEntry).values(
            user_id=user_id, amount=points, kind="credit", reason=reason, created_at=now
        )
    )
    return new_balance


@retry_transaction()
def credit(deps: Deps, user_id: str, points: int, reason: str | None = None) -> int:
    """Add ``points`` to ``user_id``'s balance (creating the account); returns the balance."""
    with unit_of_work(deps.session_factory) as session:
        new_balance = credit_in(session, deps, user_id, points, reason)
        session.commit()
    log.info("points credited", extra={"user_id": user_id, "points": points, "reason": reason})
    return new_balance
