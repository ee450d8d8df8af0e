"""Exponential backoff with jitter, for reconnecting to the broker or the database."""

from __future__ import annotations

import random


class Backoff:
    """0.2 s, 0.4 s, … up to ``cap`` seconds, each with ±25 % jitter so that several
    workers coming back after an outage do not all knock at the same instant."""

    def __init__(self, first: float = 0.2, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.current = 0.0

    def next(self) -> float:
        self.current = self.first if self.current == 0 else min(self.cap, self.current * 2)
        return self.current * random.uniform(0.75, 1.25)  # noqa: S311 - jitter only

    def reset(self) -> None:
        self.current = 0.0
