"""When a token is due for its refund, and when it can still be redeemed: the two rules.

A token is *redeemable* while it is active and ``now < expires_at``; it is *due* once it
is active and ``expires_at <= now``. At any instant exactly one of them holds for an
active token, so a redeem and a refund can never both take it: each runs its rule in
the ``WHERE`` of the statement that locks the row, and PostgreSQL re-checks that
``WHERE`` on the newest row version after waiting for a lock.

"now" is always the database's (``clock.now()``, ``now()`` in production): every caller
passes its clock's value here, never a Python ``datetime.now()``.

Every caller uses these: redeem, cancel, the reads, the expiry consumer, the sweep,
the dead-letter verdicts and the monitor. The SQL functions (``issue_token``'s check for
due tokens, in ``shared/persistence/sql/``) and the reconciliation's ``overdue`` check
write the same comparison in SQL: :func:`due_sql` is the text they follow.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_

from shared.persistence.tables import Token

ACTIVE = "active"



def due_sql(now: str = "now()", alias: str = "") -> str:
    """:func:`due` as SQL text, for statements written by hand (the monitor's gauge, the
    reconciliation's overdue check). ``now``: the instant to compare with (``now()``, or
    ``now() - interval …`` for a grace period); ``alias``: the tokens table's alias."""
    t = f"{alias}." if alias else ""
    return f"{t}status = '{ACTIVE}' AND {t}expires_at <= {now}"


def due(now: ColumnElement[datetime] | datetime) -> ColumnElement[bool]:
    """Active and ``expires_at <= now``: the refund (expire, sweep, reads) takes it."""
    return and_(Token.status == ACTIVE, Token.expires_at <= now)


def redeemable(now: ColumnElement[datetime] | datetime) -> ColumnElement[bool]:
    """Active and ``now < expires_at``: a redeem or a cancel may still take it."""
    return and_(Token.status == ACTIVE, Token.expires_at > now)


def is_due(status: str, expires_at: datetime, now: datetime) -> bool:
    """:func:`due` for a row already read (its status, expiry and the database's now)."""
    return status == ACTIVE and expires_at <= now


def seconds_until_due(expires_at: datetime, now: datetime) -> float:
    """How long an active token stays redeemable; 0 or less means it is due."""
    return (expires_at - now).total_seconds()
