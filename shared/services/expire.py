"""Expire one token: what the worker does when a token's TokenExpired message comes due."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.persistence.database import retry_transaction, unit_of_work
from shared.persistence.tables import Token
from shared.services.deps import Deps
from shared.services.restore import EXPIRED, expired_condition, log_restored, restore_tokens
from shared.services.views import Restored


@dataclass(frozen=True)
class ExpireOutcome:
    """``restored`` if this call refunded the token; otherwise ``not_due_until`` is set when
    the token is still active and not yet expired (the message came early: delay it again
    by ``not_due_until - as_of``), and both are None when there is nothing to do (already
    redeemed, restored or cancelled)."""

    restored: Restored | None
    not_due_until: datetime | None = None
    as_of: datetime | None = None


@retry_transaction()
def expire(deps: Deps, token_id: uuid.UUID) -> ExpireOutcome:
    """Restore the token's points iff it is active and ``expires_at <= now()``.

    Idempotent: a duplicate, late or replayed call finds nothing to do.
    """
    with unit_of_work(deps.session_factory) as session:
        restored = restore_tokens(
            session, deps.clock, expired_condition(deps.clock) & (Token.id == token_id), EXPIRED
        )
        outcome = ExpireOutcome(restored[0] if restored else None)
        if not restored:
            row = session.execute(
                select(Token.expires_at, deps.clock.now()).where(
                    Token.id == token_id, Token.status == "active"
                )
            ).first()
            if row is not None:
                outcome = ExpireOutcome(None, not_due_until=row[0], as_of=row[1])
        session.commit()
    log_restored(restored)
    return outcome


@retry_transaction()
def expire_many(deps: Deps, token_ids: list[uuid.UUID]) -> list[Restored]:
    """Batch form of :func:`expire` for a worker draining many due messages: one
    transaction refunds every due token of the batch (the same guard per row)."""
    if not token_ids:
        return []
    with unit_of_work(deps.session_factory) as session:
        restored = restore_tokens(
            session, deps.clock, expired_condition(deps.clock) & Token.id.in_(token_ids), EXPIRED
        )
        session.commit()
    log_restored(restored)
    return restored


@dataclass(frozen=True)
class ExpireBatchOutcome:
    """What :func:`expire_due` did: the tokens it refunded, and those still active and not
    yet due (``not_due[token_id] = expires_at``, to be delayed again by
    ``expires_at - as_of``). Any other id had nothing to do (redeemed, restored, unknown)."""

    restored: list[Restored]
    not_due: dict[uuid.UUID, datetime]
    as_of: datetime | None


@retry_transaction()
def expire_due(deps: Deps, token_ids: list[uuid.UUID]) -> ExpireBatchOutcome:
    """:func:`expire_many` that also reports the tokens whose message came early, in the
    same transaction (so the same ``now()``)."""
    if not token_ids:
        return ExpireBatchOutcome([], {}, None)
    with unit_of_work(deps.session_factory) as session:
        restored = restore_tokens(
            session, deps.clock, expired_condition(deps.clock) & Token.id.in_(token_ids), EXPIRED
        )
        done = {r.token_id for r in restored}
        rest = [t for t in token_ids if t not in done]
        not_due: dict[uuid.UUID, datetime] = {}
        as_of = session.execute(select(deps.clock.now())).scalar_one()
        if rest:
            for row in session.execute(
                select(Token.id, Token.expires_at).where(
                    Token.id.in_(rest), Token.status == "active", Token.expires_at > as_of
                )
            ):
                not_due[row.id] = row.expires_at
        session.commit()
    log_restored(restored)
    return ExpireBatchOutcome(restored, not_due, as_of)
