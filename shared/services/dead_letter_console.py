"""The dead-letter console's operations (ServicePulse / SQS redrive model): list, group,
show, replay (a transactional move: the dead letter is acked only once the republish is
confirmed), purge. Every replay and purge leaves one audit row and one log line per message.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from shared.messaging.dead_letter_queue import REPLAYED, Held, Parked, ParkingQueue
from shared.messaging.dead_letters import DeadLetter
from shared.services import dead_letter_audit as audit
from shared.services.dead_letter_verdicts import verdicts
from shared.services.deps import Deps

log = logging.getLogger("exchange_tokens.dlq")

PURGED = "purged"
ALL = "*"  # what the audit row records as the ids of ``--all``

# A replay holds every message it moves, unacknowledged, on one channel until its turn.
# RabbitMQ closes a channel whose oldest unacknowledged delivery is older than its
# consumer_timeout (30 min by default; basic.get deliveries count), so a paced replay
# that would take longer is refused before it starts: it would fail half-way.
MAX_HOLD_SECONDS = 25 * 60


class UnknownIds(LookupError):
    """Some requested ids are not in the parking queue; nothing was changed."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


class ReplayTooLong(ValueError):
    """At ``rate``, replaying ``count`` messages would hold them past the broker's consumer
    timeout; nothing was changed. ``fits``: how many one replay at that rate may move."""

    def __init__(self, count: int, rate: float) -> None:
        self.count, self.rate = count, rate
        self.fits = max(1, int(rate * MAX_HOLD_SECONDS))
        super().__init__(f"{count} replays at {rate:g}/s take {count / rate / 60:.0f} min")


@dataclass(frozen=True)
class Outcome:
    letter: DeadLetter
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome in (REPLAYED, PURGED)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.letter.id, "type": self.letter.type,
                "token_id": self.letter.token_id, "outcome": self.outcome}


def group(letters: Iterable[DeadLetter]) -> list[tuple[str, str, int]]:
    """Failures grouped by exception type and reason, most frequent first."""
    counts = Counter((dl.exception_type, dl.reason or "(unknown)") for dl in letters)
    return sorted(((e, r, n) for (e, r), n in counts.items()), key=lambda g: (-g[2], g[0], g[1]))


def group_by_type(letters: Iterable[DeadLetter]) -> list[tuple[str, str, str, int]]:
    """Failures grouped by event type (the routing key when the body cannot tell),
    exception type and reason: (type, exception_type, reason, count), most frequent first."""
    counts = Counter((dl.type or "(unknown)", dl.exception_type, dl.reason or "(unknown)")
                     for dl in letters)
    return sorted(((t, e, r, n) for (t, e, r), n in counts.items()),
                  key=lambda g: (-g[3], g[0], g[1], g[2]))


def find(queue: ParkingQueue, dead_letter_id: str) -> list[DeadLetter]:
    """Every dead letter with this id (several only for copies of one event)."""
    return [dl for dl in queue.peek() if dl.id == dead_letter_id]


def _choose(held: Held, ids: list[str] | None) -> list[Parked]:
    if ids is None:
        return list(held.items)
    present = {p.letter.id for p in held.items}
    missing = [i for i in dict.fromkeys(ids) if i not in present]
    if missing:
        raise UnknownIds(missing)
    wanted = set(ids)
    return [p for p in held.items if p.letter.id in wanted]


def _release_others(held: Held, chosen: list[Parked]) -> None:
    """Hand back at once what the command does not act on: never hold longer than needed."""
    keep = {p.tag for p in chosen}
    for parked in held.items:
        if parked.tag not in keep:
            held.release(parked)


class _Pacer:
    """At most ``rate`` actions per second; sleeps through the connection so heartbeats
    keep flowing while we wait (pika does no I/O during a plain ``time.sleep``)."""

    def __init__(self, queue: ParkingQueue, rate: float | None) -> None:
        self.queue, self.interval, self.next_at = queue, (1.0 / rate if rate else 0.0), 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            self.queue.connection.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


def _log(action: str, o: Outcome, actor: str, dry_run: bool = False) -> None:
    dl = o.letter
    fields = {
        "message_id": dl.id, "type": dl.type, "token_id": dl.token_id, "user_id": dl.user_id,
        "outcome": o.outcome, "actor": actor, "original_exchange": dl.original_exchange,
        "original_routing_key": dl.original_routing_key, "dry_run": dry_run,
    }
    done = {"replay": "replayed", "purge": "purged"}[action]
    if dry_run:
        log.info(f"message {action} dry run", extra=fields)
    elif o.ok:
        log.info(f"message {done}", extra=fields)  # "message replayed" / "message purged"
    else:
        log.warning(f"message {action} failed", extra=fields)


def _result(outcomes: list[Outcome], **extra: Any) -> dict[str, Any]:
    per_id: dict[str, str] = {}
    for o in outcomes:  # copies of one event share an id: keep every distinct outcome
        previous = per_id.get(o.letter.id)
        per_id[o.letter.id] = o.outcome if previous in (None, o.outcome) else f"{previous}; {o.outcome}"
    done = sum(o.ok for o in outcomes)
    return {"status": "done", "outcomes": per_id, "succeeded": done,
            "failed": len(outcomes) - done, **extra}


@dataclass
class _Trail:
    """The audit row of one command and the outcomes it collects."""

    id: int
    outcomes: list[Outcome] = field(default_factory=list)
    result: dict[str, Any] | None = None  # set by a dry run; else built from the outcomes


@contextmanager
def _audit_trail(
    deps: Deps, actor: str, action: str, ids: list[str] | None, dry_run: bool = False
) -> Iterator[_Trail]:
    """Open the audit row BEFORE touching the broker (no database, no change), complete it
    with each id's outcome, or with what happened if the command stopped half-way."""
    trail = _Trail(audit.begin(deps, actor, action, list(ids) if ids is not None else [ALL],
                               dry_run))
    try:
        yield trail
    except UnknownIds as exc:
        audit.finish(deps, trail.id, ids or [], {"status": "refused", "unknown_ids": exc.ids})
        raise
    except ReplayTooLong as exc:
        audit.finish(deps, trail.id, ids or [], {"status": "refused", "reason": str(exc)})
        raise
    except BaseException as exc:  # Ctrl-C and SIGTERM too: what was done is recorded
        _finish_or_tell(deps, trail, _result(trail.outcomes, status="interrupted",
                                             error=repr(exc)))
        raise
    _finish_or_tell(deps, trail, trail.result or _result(trail.outcomes))


def _finish_or_tell(deps: Deps, trail: _Trail, result: dict[str, Any]) -> None:
    """Complete the audit row; if the database went away meanwhile, put what was done on
    stderr before failing, so the operator still has the outcomes the row lacks."""
    ids = [o.letter.id for o in trail.outcomes]
    try:
        audit.finish(deps, trail.id, ids, result)
    except Exception:
        sys.stderr.write(
            f"audit row {trail.id} could not be completed; what was done:\n"
            + json.dumps({"message_ids": ids, "result": result}, default=str) + "\n")
        raise


def replay(
    deps: Deps,
    queue: ParkingQueue,
    ids: list[str] | None,
    *,
    actor: str,
    dry_run: bool = False,
    rate: float | None = None,
    limit: int | None = None,
) -> list[Outcome]:
    """Replay the dead letters with these ids (``None``: every one present now, or the
    ``limit`` oldest of them).

    Raises :class:`UnknownIds` before changing anything if an id is not there, and
    :class:`ReplayTooLong` if ``rate`` would stretch the replay past the broker's consumer
    timeout (every message goes back, in place).
    """
    with _audit_trail(deps, actor, "replay", ids, dry_run) as trail:
        with queue.hold(limit if ids is None else None) as held:
            chosen = _choose(held, ids)
            if not dry_run and rate and len(chosen) / rate > MAX_HOLD_SECONDS:
                raise ReplayTooLong(len(chosen), rate)
            if dry_run:
                letters = [p.letter for p in chosen]
            else:
                _release_others(held, chosen)
                _move(queue, held, chosen, rate, actor, trail.outcomes)
        if dry_run:  # judged after handing every message back: a dry run holds nothing
            trail.outcomes.extend(_judge(deps, queue, letters, actor))
            trail.result = {"status": "dry run",
                            "verdicts": {o.letter.id: o.outcome for o in trail.outcomes}}
    return trail.outcomes


def _move(queue: ParkingQueue, held: Held, chosen: list[Parked], rate: float | None,
          actor: str, outcomes: list[Outcome]) -> None:
    pacer = _Pacer(queue, rate)
    for parked in chosen:
        pacer.wait()
        o = Outcome(parked.letter, queue.republish(parked.letter))
        # The transactional move: ack only after the broker confirmed the copy; a copy
        # that was not confirmed leaves the dead letter where it was.
        (held.ack if o.ok else held.release)(parked)
        outcomes.append(o)
        _log("replay", o, actor)


def _judge(deps: Deps, queue: ParkingQueue, letters: list[DeadLetter], actor: str) -> list[Outcome]:
    said = verdicts(deps, letters, queue.exchange_problem)
    outcomes = [Outcome(letter, said[i]) for i, letter in enumerate(letters)]
    for o in outcomes:
        _log("replay", o, actor, dry_run=True)
    return outcomes


def purge(
    deps: Deps, queue: ParkingQueue, ids: list[str] | None, *, actor: str, missing_ok: bool = False
) -> list[Outcome]:
    """Drop the dead letters with these ids (``None``: every one present now) for good.

    ``missing_ok``: ids gone meanwhile (replayed by someone else) are skipped, not refused.
    """
    with _audit_trail(deps, actor, "purge", ids) as trail, queue.hold() as held:
        if missing_ok and ids is not None:
            present = {p.letter.id for p in held.items}
            ids = [i for i in ids if i in present]
        chosen = _choose(held, ids)
        _release_others(held, chosen)
        for parked in chosen:
            held.ack(parked)
            o = Outcome(parked.letter, PURGED)
            trail.outcomes.append(o)
            _log("purge", o, actor)
    return trail.outcomes
