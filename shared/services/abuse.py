"""Abuse limit on redeeming: a merchant that keeps presenting unknown codes is stopped.

Guessing codes is the attack, so only failures that reveal nothing but "no such code"
count (404 ``token_not_found``). A 409 (already redeemed) or 410 (expired or cancelled)
needs a code that really existed: a terminal scanning the same QR twice must not lock
itself out. Counts live in ``redeem_failures``, one row per merchant and minute window,
so every API process and thread shares them.

The limit is exact, also for guesses sent all at once. Each attempt first takes one unit
of the window's allowance by a conditional upsert (``failures < limit``: PostgreSQL's row
lock queues concurrent attempts of one merchant, and each sees the count the one before
it left), and only then looks the code up. An unknown code keeps its unit: that is the
failure counted. Any other outcome gives it back. Checking and counting in separate
statements, as this module first did, let N attempts in flight pass the limit by N-1.

What it costs: an attempt that finds a code answers 429 while the merchant's failures
plus its attempts in flight reach the limit, and a process killed between the two
statements leaves one unit taken until its minute ends. Both err on the side of refusing,
for one minute at most.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from shared.errors import TokenNotFound, TooManyAttempts
from shared.persistence.database import retry_transaction
from shared.persistence.tables import RedeemFailures
from shared.services.deps import Deps

log = logging.getLogger("exchange_tokens.abuse")

_MINUTE: ColumnElement[timedelta] = literal_column("interval '1 minute'")


def _window(deps: Deps) -> ColumnElement[datetime]:
    # The database's clock decides the minute (CONTRACT.md: one clock).
    return func.date_trunc("minute", deps.clock.now())


@retry_transaction()
def take_attempt(deps: Deps, merchant_id: str) -> datetime:
    """Take one unit of ``merchant_id``'s allowance in the current minute; returns the
    window it was taken from. Raises :class:`TooManyAttempts` when none is left."""
    limit = deps.redeem_failures_per_minute
    upsert = pg_insert(RedeemFailures).values(
        merchant_id=merchant_id, window_start=_window(deps), failures=1)
    stmt = upsert.on_conflict_do_update(
        index_elements=[RedeemFailures.merchant_id, RedeemFailures.window_start],
        set_={"failures": RedeemFailures.failures + 1},
        # On the row as locked: a concurrent attempt's increment is seen, never skipped.
        where=RedeemFailures.failures < limit,
    ).returning(RedeemFailures.window_start)
    with deps.engine.begin() as conn:
        window = conn.execute(stmt).scalar_one_or_none()
        if window is not None:
            return window
        # Nothing updated: the window is full. Its end, for Retry-After.
        seconds = conn.execute(select(func.ceil(func.extract(
            "epoch", _window(deps) + _MINUTE - deps.clock.now())))).scalar_one()
    raise TooManyAttempts("too many failed redeem attempts", limit=limit,
                          retry_after=max(1, int(seconds or 1)))


def give_back(deps: Deps, merchant_id: str, window: datetime) -> None:
    """Return a unit taken by :func:`take_attempt` to the window it came from (the minute
    may have turned since). Best effort: if the database is away the unit stays taken
    until that minute ends, which refuses more rather than less."""
    stmt = (update(RedeemFailures)
            .where(RedeemFailures.merchant_id == merchant_id,
                   RedeemFailures.window_start == window,
                   RedeemFailures.failures > 0)
            .values(failures=RedeemFailures.failures - 1))
    try:
        with deps.engine.begin() as conn:
            conn.execute(stmt)
    except DBAPIError as exc:
        log.warning("redeem attempt not given back", extra={
            "merchant_id": merchant_id, "error": str(exc).splitlines()[0]})


@contextmanager
def redeem_attempt(deps: Deps, merchant_id: str) -> Iterator[None]:
    """Around one redeem by ``merchant_id``: refused with :class:`TooManyAttempts` when
    its failures (and attempts in flight) reach the limit; counted as a failure when the
    body raises :class:`TokenNotFound`; not counted otherwise."""
    window = take_attempt(deps, merchant_id)
    try:
        yield
    except TokenNotFound:
        raise  # an unknown code: the unit taken is the failure counted
    except BaseException:
        give_back(deps, merchant_id, window)
        raise
    give_back(deps, merchant_id, window)


def failures(deps: Deps, merchant_id: str) -> int:
    """``merchant_id``'s failures (and attempts in flight) in the current minute."""
    with deps.engine.connect() as conn:
        count = conn.execute(select(RedeemFailures.failures).where(
            RedeemFailures.merchant_id == merchant_id,
            RedeemFailures.window_start == _window(deps))).scalar_one_or_none()
    return count or 0
