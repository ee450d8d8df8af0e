"""A clock tests move by hand: services take any :class:`shared.clock.Clock`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import literal
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import DateTime


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
