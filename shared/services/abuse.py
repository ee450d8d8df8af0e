"""Abuse limit on redeeming: a merchant that keeps presenting unknown codes is stopped.

Guessing codes is the attack, so only failures that reveal nothing but "no such code"
count (404 ``token_not_found``). A 409 (already redeemed) or 410 (expired or cancelled)
needs a code that really existed: a terminal scanning the same QR twice must not lock
itself out. Counts live in ``redeem_failures``, one row per merchant and minute window,
bumped by one atomic upsert, so every API process and thread shares them. The check and
the count are separate short transactions: N guesses in flight at once may pass the limit
by N-1 within a window, which leaves the guessing rate bounded (codes have 160 bits).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.errors import TooManyAttempts
from shared.persistence.database import retry_transaction, unit_of_work
from shared.persistence.tables import RedeemFailures
from shared.services.deps import Deps


def _window(deps: Deps) -> ColumnElement[datetime]:
    # The database's clock decides the minute (CONTRACT.md: one clock).
    return func.date_trunc("minute", deps.clock.now())


def check_redeem_allowed(deps: Deps, merchant_id: str) -> None:
    """Raise :class:`TooManyAttempts` when ``merchant_id`` already failed
    ``redeem_failures_per_minute`` times in the current minute. Changes nothing."""
    with unit_of_work(deps.session_factory) as session:
        row = session.execute(
            select(
                RedeemFailures.failures,
                func.ceil(func.extract(
                    "epoch", RedeemFailures.window_start + literal_column("interval '1 minute'")
                    - deps.clock.now())),
            ).where(RedeemFailures.merchant_id == merchant_id,
                    RedeemFailures.window_start == _window(deps))
        ).first()
    if row is not None and row[0] >= deps.redeem_failures_per_minute:
        raise TooManyAttempts(
            "too many failed redeem attempts",
            limit=deps.redeem_failures_per_minute,
            retry_after=max(1, int(row[1] or 1)),
        )


@retry_transaction()
def record_redeem_failure(deps: Deps, merchant_id: str) -> int:
    """Count one failed attempt in the current window; returns the window's count."""
    with unit_of_work(deps.session_factory) as session:
        window = _window(deps)
        insert = pg_insert(RedeemFailures).values(
            merchant_id=merchant_id, window_start=window, failures=1
        )
        # Atomic increment: concurrent failures of one merchant queue on the row lock.
        stmt = insert.on_conflict_do_update(
            index_elements=[RedeemFailures.merchant_id, RedeemFailures.window_start],
            set_={"failures": RedeemFailures.failures + 1},
        ).returning(RedeemFailures.failures)
        failures: int = session.execute(stmt).scalar_one()
        # Old windows of this merchant are of no further use.
        session.execute(delete(RedeemFailures).where(
            RedeemFailures.merchant_id == merchant_id, RedeemFailures.window_start < window))
        session.commit()
    return failures
