"""What benchmarks hand to each other (memory figures come from the API and worker runs),
and the way a figure says it cannot be measured yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class NotMeasured(Exception):
    """A figure that cannot be measured here (a missing command, say): reported as
    "not measured: <reason>" in the table, never as a number."""


@dataclass
class Context:
    quick: bool
    memory_mb: dict[str, float] = field(default_factory=dict)
    memory_notes: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
