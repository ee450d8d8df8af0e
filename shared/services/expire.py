"""Expire one token: what the worker does when a token's TokenExpired message comes due."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.expiry_rules import due, redeemable
from shared.persistence.tables import Token
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.refund import EXPIRED, log_refunds, refund_tokens
from shared.services.views import Refund


@dataclass(frozen=True)
class ExpireOutcome:
    """``restored`` if this call refunded the token; otherwise ``not_due_until`` is set when
    the token is still active and not yet expired (the message came early: delay it again
    by ``not_due_until - as_of``), and both are None when there is nothing to do (already
    redeemed, restored or cancelled)."""

    restored: Refund | None
    not_due_until: datetime | None = None
    as_of: datetime | None = None


def expire(deps: Deps, token_id: uuid.UUID) -> ExpireOutcome:
    """Restore the token's points iff it is active and ``expires_at <= now()``.

    Idempotent: a duplicate, late or replayed call finds nothing to do. The one-token
    form of :func:`expire_due`.
    """
    batch = expire_due(deps, [token_id])
    if batch.restored:
        return ExpireOutcome(batch.restored[0])
    if token_id in batch.not_due:
        return ExpireOutcome(None, not_due_until=batch.not_due[token_id], as_of=batch.as_of)
    return ExpireOutcome(None)


@dataclass(frozen=True)
class ExpireBatchOutcome:
    """What :func:`expire_due` did: the tokens it refunded, and those still active and not
    yet due (``not_due[token_id] = expires_at``, to be delayed again by
    ``expires_at - as_of``). Any other id had nothing to do (redeemed, restored, unknown)."""

    restored: list[Refund]
    not_due: dict[uuid.UUID, datetime]
    as_of: datetime | None


@retry_transaction()
def expire_due(deps: Deps, token_ids: list[uuid.UUID]) -> ExpireBatchOutcome:
    """Refund every due token of a batch in one transaction (each row keeps its own guard),
    and report, in the same transaction (so the same ``now()``), those whose message came
    early."""
    if not token_ids:
        return ExpireBatchOutcome([], {}, None)
    with unit_of_work(deps.session_factory) as session:
        restored = refund_tokens(
            session, deps.clock, due(deps.clock.now()) & Token.id.in_(token_ids), EXPIRED
        )
        done = {r.token_id for r in restored}
        rest = [t for t in token_ids if t not in done]
        not_due: dict[uuid.UUID, datetime] = {}
        as_of = None
        if rest:  # the common batch is all due: no extra query
            as_of = session.execute(select(deps.clock.now())).scalar_one()
            for row in session.execute(
                select(Token.id, Token.expires_at).where(
                    Token.id.in_(rest), redeemable(as_of)  # active, not yet due
                )
            ):
                not_due[row.id] = row.expires_at
        session.commit()
    log_refunds(restored)
    return ExpireBatchOutcome(restored, not_due, as_of)
