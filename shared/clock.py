"""Where "now" comes from. PostgreSQL's clock is the one clock.

Services never compare times in Python: they put ``clock.now()`` into their SQL, which
is ``now()`` (the transaction's start time) in production. Tests inject a
clock of their own, whose value is bound as a literal, to step time without sleeping.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import func
from sqlalchemy.sql.elements import ColumnElement


class Clock(Protocol):
    def now(self) -> ColumnElement[datetime]: ...

    def fixed(self) -> datetime | None:
        """The instant to pass as a bind parameter where SQL takes one (the issue_token
        function), or None for the database's own ``now()``."""
        ...


class DatabaseClock:
    """``now()`` of the current transaction: every statement of one service call agrees."""

    def now(self) -> ColumnElement[datetime]:
        return func.now()

    def fixed(self) -> datetime | None:
        return None
