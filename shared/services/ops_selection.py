"""Which dead letters an ops action is about: a selection made of ids, a group (exception
type and reason, as the console groups them) or a filter, always evaluated here, on the
server, against what is in the parking queue now; never a page of ids a browser happened
to show. Pure: no broker, no database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.services.ops_dead_letters import DeadLetter


class InvalidSelection(ValueError):
    """The selection names nothing, or more than one way of choosing."""


@dataclass(frozen=True)
class Filter:
    """Every given field must match; an empty filter matches every dead letter.

    ``exception`` matches a substring of the exception text, case-insensitive; ``type``,
    ``reason`` and ``exception_type`` match exactly; ``min_age_seconds`` keeps the dead
    letters parked at least that long ago (by their dead-lettered-at header)."""

    type: str | None = None
    reason: str | None = None
    exception_type: str | None = None
    exception: str | None = None
    min_age_seconds: float | None = None

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        if self.type is not None and letter.type != self.type:
            return False
        if self.reason is not None and (letter.reason or "(unknown)") != self.reason:
            return False
        if self.exception_type is not None and letter.exception_type != self.exception_type:
            return False
        if self.exception is not None and \
                self.exception.lower() not in (letter.exception or "").lower():
            return False
        if self.min_age_seconds is not None:
            age = age_seconds(letter, now)
            if age is None or age < self.min_age_seconds:
                return False
        return True


@dataclass(frozen=True)
class Selection:
    """Exactly one of ``ids``, ``group`` (exception_type, reason) or ``filter``."""

    ids: tuple[str, ...] | None = None
    group: tuple[str, str] | None = None
    filter: Filter | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.ids, self.group, self.filter))
        if given != 1:
            raise InvalidSelection("give exactly one of ids, group or filter")
        if self.ids is not None and not self.ids:
            raise InvalidSelection("ids must not be empty")

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        if self.ids is not None:
            return letter.id in self.ids
        if self.group is not None:
            return (letter.exception_type, letter.reason or "(unknown)") == self.group
        assert self.filter is not None
        return self.filter.matches(letter, now)

    def pick(self, letters: Iterable[DeadLetter], now: datetime | None = None) -> list[DeadLetter]:
        at = now or datetime.now(UTC)
        return [dl for dl in letters if self.matches(dl, at)]

    def as_json(self) -> dict[str, Any]:
        if self.ids is not None:
            return {"ids": list(self.ids)}
        if self.group is not None:
            return {"group": {"exception_type": self.group[0], "reason": self.group[1]}}
        assert self.filter is not None
        return {"filter": {k: v for k, v in vars(self.filter).items() if v is not None}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        if "ids" in data and data["ids"] is not None:
            return cls(ids=tuple(dict.fromkeys(str(i) for i in data["ids"])))
        if data.get("group") is not None:
            g = data["group"]
            return cls(group=(str(g["exception_type"]), str(g["reason"])))
        if data.get("filter") is not None:
            return cls(filter=Filter(**data["filter"]))
        raise InvalidSelection("give exactly one of ids, group or filter")


def age_seconds(letter: DeadLetter, now: datetime) -> float | None:
    """Seconds since the letter was parked, or None when it carries no time."""
    raw = letter.dead_lettered_at
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (now - at).total_seconds()
