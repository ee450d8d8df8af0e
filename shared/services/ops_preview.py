"""What replaying a selection would do to the business, before it runs: each message's
verdict (judged against the database, read-only) and the total effect: points refunded,
to how many users, how many no-ops and failures."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.services.deps import Deps
from shared.services.ops_dead_letters import DeadLetter, ParkingQueue, verdicts
from shared.services.ops_reading import read_all
from shared.services.ops_selection import Selection

_REFUND = re.compile(r"would restore (\d+) points")

REFUND, NO_OP, FAILURE, OTHER = "refund", "no-op", "failure", "other"


def classify(verdict: str) -> tuple[str, int]:
    """The kind of effect a verdict announces, and the points it would refund."""
    if m := _REFUND.search(verdict):
        return REFUND, int(m.group(1))
    if verdict.startswith(("poison", "cannot replay")):
        return FAILURE, 0
    if "no-op" in verdict:
        return NO_OP, 0
    return OTHER, 0  # an effect other than a refund: a request, a timer, a re-delay


@dataclass
class Effect:
    messages: int = 0
    refunds: int = 0
    points: int = 0
    users: set[str] = field(default_factory=set)
    no_ops: int = 0
    failures: int = 0
    other: int = 0

    def add(self, letter: DeadLetter, verdict: str) -> str:
        kind, points = classify(verdict)
        self.messages += 1
        if kind == REFUND:
            self.refunds += 1
            self.points += points
            if letter.user_id:
                self.users.add(letter.user_id)
        elif kind == NO_OP:
            self.no_ops += 1
        elif kind == FAILURE:
            self.failures += 1
        else:
            self.other += 1
        return kind

    def as_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "refunds": self.refunds,
                "points_refunded": self.points, "users": len(self.users),
                "no_ops": self.no_ops, "failures": self.failures, "other": self.other}


def preview(deps: Deps, queue: ParkingQueue, selection: Selection,
            limit: int | None = None) -> tuple[list[dict[str, Any]], Effect, bool]:
    """Each selected message's verdict, the total effect, and whether the parking queue
    held more than ``limit`` (then only the oldest ``limit`` were judged). Holds nothing
    afterwards: the letters are read and put back before they are judged."""
    depth, read = read_all(deps, queue, limit)
    letters = selection.pick(read)
    said = verdicts(deps, letters, queue.exchange_problem)
    effect = Effect()
    rows = []
    for i, letter in enumerate(letters):
        kind = effect.add(letter, said[i])
        rows.append({"id": letter.id, "type": letter.type, "token_id": letter.token_id,
                     "user_id": letter.user_id, "verdict": said[i], "effect": kind})
    return rows, effect, depth > len(read)
