"""Where "now" comes from. PostgreSQL's clock is the one clock (CONTRACT.md).

Services never compare times in Python: they put ``clock.now()`` into their SQL, which
is ``now()`` (the transaction's start time) in production. Tests inject a
:class:`FixedClock`, whose value is bound as a literal, to step time without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import func, literal
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import DateTime


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


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2030, 1, 1, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def now(self) -> ColumnElement[datetime]:
        return literal(self.current, DateTime(timezone=True))

    def fixed(self) -> datetime | None:
        return self.current
