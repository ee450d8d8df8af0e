"""Retention: the tables that only grow get pruned, never the ledger or live state.

- Published outbox rows: the broker has confirmed them; kept a while for investigation
  (``outbox_keep``), then deleted. Unpublished rows are never touched.
- Idempotency keys: answered again only within 24 h (CONTRACT.md), so older ones go.
- Redeem failure windows (shared/services/abuse.py): only the current minute's counts
  anything, so every earlier window goes.

Each delete is bounded (``batch`` rows per transaction) so a first prune after months
never holds long locks or hits the statement timeout; the periodic sweeper calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, tuple_

from shared.persistence.database import retry_transaction, unit_of_work
from shared.persistence.tables import IdempotencyKey, OutboxMessage, RedeemFailures
from shared.services.deps import Deps

OUTBOX_KEEP = timedelta(days=7)
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Pruned:
    outbox: int
    idempotency_keys: int
    redeem_windows: int


@retry_transaction()
def _prune_outbox(deps: Deps, keep: timedelta, batch: int) -> int:
    with unit_of_work(deps.session_factory) as session:
        old = (
            select(OutboxMessage.id)
            .where(OutboxMessage.published_at < deps.clock.now() - keep)  # NULL: unsent, kept
            .order_by(OutboxMessage.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        ids = session.execute(old).scalars().all()
        if ids:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        session.commit()
        return len(ids)


@retry_transaction()
def _prune_keys(deps: Deps, batch: int) -> int:
    with unit_of_work(deps.session_factory) as session:
        old = (
            select(IdempotencyKey.caller, IdempotencyKey.endpoint, IdempotencyKey.key)
            .where(IdempotencyKey.created_at < deps.clock.now() - IDEMPOTENCY_WINDOW)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        rows = session.execute(old).all()
        if rows:  # the rows are locked by us: one DELETE takes them all
            pk = tuple_(IdempotencyKey.caller, IdempotencyKey.endpoint, IdempotencyKey.key)
            session.execute(delete(IdempotencyKey).where(pk.in_([tuple(r) for r in rows])))
        session.commit()
        return len(rows)


@retry_transaction()
def _prune_redeem_windows(deps: Deps, batch: int) -> int:
    with unit_of_work(deps.session_factory) as session:
        old = (
            select(RedeemFailures.merchant_id, RedeemFailures.window_start)
            .where(RedeemFailures.window_start < func.date_trunc("minute", deps.clock.now()))
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        rows = session.execute(old).all()
        if rows:
            pk = tuple_(RedeemFailures.merchant_id, RedeemFailures.window_start)
            session.execute(delete(RedeemFailures).where(pk.in_([tuple(r) for r in rows])))
        session.commit()
        return len(rows)


def prune(deps: Deps, *, outbox_keep: timedelta = OUTBOX_KEEP, batch: int = 5000,
          max_batches: int = 20) -> Pruned:
    """Delete published outbox rows older than ``outbox_keep``, idempotency keys past
    their 24 h window and past redeem failure windows, at most ``batch`` × ``max_batches``
    of each per call."""
    outbox = keys = windows = 0
    for _ in range(max_batches):
        n = _prune_outbox(deps, outbox_keep, batch)
        outbox += n
        if n < batch:
            break
    for _ in range(max_batches):
        n = _prune_keys(deps, batch)
        keys += n
        if n < batch:
            break
    for _ in range(max_batches):
        n = _prune_redeem_windows(deps, batch)
        windows += n
        if n < batch:
            break
    return Pruned(outbox=outbox, idempotency_keys=keys, redeem_windows=windows)
