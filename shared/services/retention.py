"""Retention: the tables that only grow get pruned, never the ledger or live state.

- Published outbox rows: the broker has confirmed them; kept a while for investigation
  (``outbox_keep``), then deleted. Unpublished rows are never touched.
- Idempotency keys: answered again only within 24 h (docs/api.md), so older ones go.
- Redeem failure windows (shared/services/abuse.py): only the current minute's counts
  anything, so every earlier window goes.

Each delete is bounded (``batch`` rows per transaction) so a first prune after months
never holds long locks or hits the statement timeout; the periodic sweeper calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, tuple_

from shared.batches import until_short
from shared.persistence.tables import IdempotencyKey, OutboxMessage, RedeemFailures
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps

OUTBOX_KEEP = timedelta(days=7)
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Pruned:
    outbox: int
    idempotency_keys: int
    redeem_windows: int


@retry_transaction()
def _prune_batch(deps: Deps, table: Any, condition: ColumnElement[bool], batch: int) -> int:
    """Delete at most ``batch`` rows of ``table`` matching ``condition``, in one short
    transaction. SKIP LOCKED: rows another pruner holds are its own; the rows we locked
    go in one DELETE by primary key."""
    pk = list(table.__table__.primary_key.columns)
    with unit_of_work(deps.session_factory) as session:
        old = (select(*pk).where(condition).order_by(*pk).limit(batch)
               .with_for_update(skip_locked=True))
        rows = session.execute(old).all()
        if rows:
            key = pk[0] if len(pk) == 1 else tuple_(*pk)
            values = [r[0] for r in rows] if len(pk) == 1 else [tuple(r) for r in rows]
            session.execute(delete(table).where(key.in_(values)))
        session.commit()
        return len(rows)


def _prune_all(deps: Deps, table: Any, condition: ColumnElement[bool], batch: int,
               max_batches: int) -> int:
    return sum(until_short(lambda: _prune_batch(deps, table, condition, batch), batch,
                           max_batches=max_batches))


def prune(deps: Deps, *, outbox_keep: timedelta = OUTBOX_KEEP, batch: int = 5000,
          max_batches: int = 20) -> Pruned:
    """Delete published outbox rows older than ``outbox_keep``, idempotency keys past
    their 24 h window and past redeem failure windows, at most ``batch`` × ``max_batches``
    of each per call."""
    now = deps.clock.now()
    return Pruned(
        # NULL published_at (unsent) is never older than anything: kept.
        outbox=_prune_all(deps, OutboxMessage, OutboxMessage.published_at < now - outbox_keep,
                          batch, max_batches),
        idempotency_keys=_prune_all(
            deps, IdempotencyKey, IdempotencyKey.created_at < now - IDEMPOTENCY_WINDOW,
            batch, max_batches),
        redeem_windows=_prune_all(
            deps, RedeemFailures, RedeemFailures.window_start < func.date_trunc("minute", now),
            batch, max_batches),
    )
