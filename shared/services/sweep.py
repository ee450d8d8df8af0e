"""The safety net: restore every expired token, whatever happened to its timer."""

from __future__ import annotations

from sqlalchemy import select

from shared.batches import until_short
from shared.expiry_rules import due
from shared.persistence.tables import Token
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps
from shared.services.refund import EXPIRED, log_refunds, refund_tokens
from shared.services.views import Refund


@retry_transaction()
def sweep(
    deps: Deps, user_id: str | None = None, dry_run: bool = False, limit: int = 500
) -> list[Refund]:
    """Restore up to ``limit`` expired tokens (of ``user_id``, or everyone's).

    Rows locked by another transaction are skipped (SKIP LOCKED), so several sweepers, the
    workers and the API run side by side; call again until it returns fewer than ``limit``.
    ``dry_run`` reports what would be restored and changes nothing.
    """
    condition = due(deps.clock.now())
    if user_id is not None:
        condition = condition & (Token.user_id == user_id)
    with unit_of_work(deps.session_factory) as session:
        if dry_run:
            now = session.execute(select(deps.clock.now())).scalar_one()
            rows = session.execute(
                select(Token.id, Token.user_id, Token.points, Token.expires_at)
                .where(condition)
                .order_by(Token.expires_at)
                .limit(limit)
            ).all()
            return [
                Refund(token_id=r.id, user_id=r.user_id, points=r.points, reason=EXPIRED,
                         expires_at=r.expires_at, restored_at=now)
                for r in rows
            ]
        restored = refund_tokens(
            session, deps.clock, condition, EXPIRED, limit=limit, skip_locked=True
        )
        session.commit()
    log_refunds(restored)
    return restored


def sweep_all(deps: Deps, dry_run: bool = False, batch: int = 500) -> list[Refund]:
    """Every expired token now, in bounded batches (the `cleanup` command)."""
    if dry_run:
        return sweep(deps, dry_run=True, limit=10_000_000)
    done: list[Refund] = []
    for restored in until_short(lambda: sweep(deps, limit=batch), batch):
        done.extend(restored)
    return done
