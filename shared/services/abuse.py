"""Abuse limit on redeeming: a merchant that keeps presenting unknown codes is stopped.

Guessing codes is the attack, so only failures that reveal nothing but "no such code"
count (404 ``token_not_found``). A 409 (already redeemed) or 410 (expired or cancelled)
needs a code that really existed: a terminal scanning the same QR twice must not lock
itself out, and a valid code never takes anything from the allowance, however many
redeems a merchant has in flight. Counts live in ``redeem_failures``, one row per
merchant and minute window, so every API process and thread shares them.

Two steps around the lookup. Before it, a read: a merchant at the limit gets 429 without
any token being looked at. After an unknown code, the count: one conditional upsert
(``failures < limit``, evaluated on the row as locked, so concurrent failures of one
merchant queue and each sees the count the one before it left). If the window had no
room left, the answer is 429 instead of the 404: whatever the overlap, a merchant gets
at most ``limit`` answers "no such code" a minute. (Counted after the read, as this
module first did, twenty guesses in flight together all answered 404 under a limit of
five.) Guesses in flight when the limit is reached are still looked up; their answers
reveal nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.errors import TooManyAttempts
from shared.persistence.tables import RedeemFailures
from shared.persistence.transactions import retry_transaction
from shared.services.deps import Deps

_MINUTE: ColumnElement[timedelta] = literal_column("interval '1 minute'")


def _window(deps: Deps) -> ColumnElement[datetime]:
    # The database's clock decides the minute (PostgreSQL's: the one clock).
    return func.date_trunc("minute", deps.clock.now())


def _refusal(conn: Connection, deps: Deps) -> TooManyAttempts:
    seconds = conn.execute(select(func.ceil(func.extract(
        "epoch", _window(deps) + _MINUTE - deps.clock.now())))).scalar_one()
    return TooManyAttempts("too many failed redeem attempts",
                           limit=deps.redeem_failures_per_minute,
                           retry_after=max(1, int(seconds or 1)))


def check_redeem_allowed(deps: Deps, merchant_id: str) -> None:
    """Raise :class:`TooManyAttempts` when ``merchant_id`` already failed
    ``redeem_failures_per_minute`` times in the current minute. Changes nothing."""
    with deps.engine.connect() as conn:
        if failures(conn, deps, merchant_id) >= deps.redeem_failures_per_minute:
            raise _refusal(conn, deps)


@retry_transaction()
def record_redeem_failure(deps: Deps, merchant_id: str) -> int:
    """Count one unknown code of ``merchant_id`` in the current minute; returns the
    minute's count. Raises :class:`TooManyAttempts` when the minute had no room left:
    the caller answers that instead of "no such code"."""
    upsert = pg_insert(RedeemFailures).values(
        merchant_id=merchant_id, window_start=_window(deps), failures=1)
    stmt = upsert.on_conflict_do_update(
        index_elements=[RedeemFailures.merchant_id, RedeemFailures.window_start],
        set_={"failures": RedeemFailures.failures + 1},
        where=RedeemFailures.failures < deps.redeem_failures_per_minute,
    ).returning(RedeemFailures.failures)
    with deps.engine.begin() as conn:
        count = conn.execute(stmt).scalar_one_or_none()
        if count is None:
            raise _refusal(conn, deps)
    return int(count)


def failures(conn: Connection, deps: Deps, merchant_id: str) -> int:
    """``merchant_id``'s failures in the current minute."""
    count = conn.execute(select(RedeemFailures.failures).where(
        RedeemFailures.merchant_id == merchant_id,
        RedeemFailures.window_start == _window(deps))).scalar_one_or_none()
    return int(count or 0)
