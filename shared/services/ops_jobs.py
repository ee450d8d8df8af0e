"""Replay and purge jobs of the ops console.

The API inserts a ``queued`` row; a worker's ``ops`` role claims it with a conditional
update (``FOR UPDATE SKIP LOCKED``: two workers never take one job) and runs it, so the job
survives the API process that accepted it. A running job writes a heartbeat with its
progress; one whose worker went silent for ``STALE_SECONDS`` is claimed again, and the new
run moves only what is still parked.

A replay is the dead-letter console's transactional move: each message is republished with
confirms and its dead letter acked only once the broker confirmed the copy; a copy refused
or unconfirmed leaves it parked (at worst a duplicate, which consumers absorb). Messages go
at most ``rate`` a second, and are held unacked in chunks short enough to stay within the
broker's consumer timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB

from shared.persistence.tables import OpsJob
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps
from shared.services.ops_dead_letters import REPLAYED, Held, Parked, ParkingQueue, audit, console
from shared.services.ops_reading import read_all
from shared.services.ops_selection import Selection

log = logging.getLogger("exchange_tokens.ops")

KINDS = ("replay", "purge")
DEFAULT_RATE = 100.0  # messages a second
MIN_RATE, MAX_RATE = 1.0, 1000.0  # at least one a second: the heartbeat goes between messages
STALE_SECONDS = 30.0
PROGRESS_EVERY_SECONDS = 0.5
PURGED = "purged"
GONE = "no longer parked (moved before this run)"


class JobLost(RuntimeError):
    """Another worker claimed the job (this one was silent too long): stop, hand back."""


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    actor: str
    selection: dict[str, Any]
    rate: float
    status: str
    total: int | None
    done: int
    failed: int
    error: str | None
    created_at: Any
    started_at: Any
    finished_at: Any
    outcomes: dict[str, Any]

    def as_json(self, with_outcomes: bool = False) -> dict[str, Any]:
        out = {
            "id": self.id, "kind": self.kind, "actor": self.actor, "selection": self.selection,
            "rate": self.rate, "status": self.status, "total": self.total, "done": self.done,
            "failed": self.failed, "error": self.error,
            "created_at": _iso(self.created_at), "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }
        if with_outcomes:
            out["outcomes"] = self.outcomes
        return out


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _view(row: OpsJob) -> JobView:
    return JobView(row.id, row.kind, row.actor, dict(row.selection), row.rate, row.status,
                   row.total, row.done, row.failed, row.error, row.created_at, row.started_at,
                   row.finished_at, dict(row.outcomes or {}))


def create(deps: Deps, kind: str, selection: Selection, actor: str,
           rate: float = DEFAULT_RATE) -> JobView:
    """Queue a job; a worker's ``ops`` role runs it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be from {MIN_RATE:g} to {MAX_RATE:g} messages a second")
    with unit_of_work(deps.session_factory) as session:
        row = OpsJob(kind=kind, actor=actor, selection=selection.as_json(), rate=rate)
        session.add(row)
        session.flush()
        session.refresh(row)
        view = _view(row)
        session.commit()
    log.info("ops job queued", extra={"job_id": view.id, "kind": kind, "actor": actor})
    return view


def get(deps: Deps, job_id: int) -> JobView | None:
    with unit_of_work(deps.session_factory) as session:
        row = session.get(OpsJob, job_id)
        return _view(row) if row else None


def latest(deps: Deps, limit: int = 50) -> list[JobView]:
    with unit_of_work(deps.session_factory) as session:
        rows = session.execute(
            select(OpsJob).order_by(OpsJob.id.desc()).limit(limit)).scalars().all()
        return [_view(r) for r in rows]


_CLAIM = text("""
    UPDATE ops_jobs SET status = 'running', claimed_by = :me, heartbeat_at = now(),
                        started_at = coalesce(started_at, now())
    WHERE id = (
        SELECT id FROM ops_jobs
        WHERE status = 'queued'
           OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => :stale))
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id
""")


def claim(deps: Deps, worker_id: str, stale_seconds: float = STALE_SECONDS) -> int | None:
    """Take the oldest queued job (or one whose worker went silent): its id, or None."""
    with unit_of_work(deps.session_factory) as session:
        job_id = session.execute(_CLAIM, {"me": worker_id, "stale": stale_seconds}).scalar()
        session.commit()
    return job_id


class _Progress:
    """Writes done / failed / outcomes and the heartbeat, conditional on still owning the
    job: a worker that lost it learns so at its next write and stops."""

    def __init__(self, deps: Deps, job_id: int, worker_id: str, outcomes: dict[str, Any],
                 done: int, failed: int) -> None:
        self.deps, self.job_id, self.worker_id = deps, job_id, worker_id
        self.outcomes, self.done, self.failed = outcomes, done, failed
        self.pending: dict[str, Any] = {}
        self.last_write = time.monotonic()

    def record(self, letter_id: str, outcome: str, ok: bool) -> None:
        previous = self.outcomes.get(letter_id)
        value = outcome if previous in (None, outcome) else f"{previous}; {outcome}"
        self.outcomes[letter_id] = self.pending[letter_id] = value
        self.done += ok
        self.failed += not ok
        if time.monotonic() - self.last_write >= PROGRESS_EVERY_SECONDS:
            self.write()

    def write(self, **final: Any) -> None:
        with unit_of_work(self.deps.session_factory) as session:
            changed = session.execute(
                update(OpsJob)
                .where(OpsJob.id == self.job_id, OpsJob.claimed_by == self.worker_id)
                .values(done=self.done, failed=self.failed,
                        outcomes=OpsJob.outcomes.op("||")(_jsonb(self.pending)),
                        heartbeat_at=text("now()"), **final)
                .returning(OpsJob.id)
            ).first()
            session.commit()
        self.pending = {}
        self.last_write = time.monotonic()
        if changed is None:
            raise JobLost(f"job {self.job_id} was claimed by another worker")


def _jsonb(value: dict[str, Any]) -> Any:
    return literal(value, JSONB)


class _Pacer:
    """At most ``rate`` messages a second; waits through the connection so its heartbeats
    keep flowing (pika does no I/O during a plain sleep)."""

    def __init__(self, queue: ParkingQueue, rate: float) -> None:
        self.queue, self.interval, self.next_at = queue, 1.0 / rate, 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            self.queue.connection.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


def run(deps: Deps, queue: ParkingQueue, job_id: int, worker_id: str,
        stop: threading.Event | None = None) -> JobView:
    """Run a claimed job to its end (or until ``stop``: it is then claimed again later)."""
    with unit_of_work(deps.session_factory) as session:
        row = session.get(OpsJob, job_id)
        assert row is not None
        job = _view(row)
        frozen = list(row.message_ids) if row.message_ids is not None else None
        audit_id = row.audit_id
    if frozen is None:  # first run: the selection is evaluated now, once, on the server
        frozen, audit_id = _freeze(deps, queue, job, worker_id)
    progress = _Progress(deps, job_id, worker_id, dict(job.outcomes), job.done, job.failed)
    try:
        _move(queue, job, frozen, progress, stop)
    except JobLost:
        log.warning("ops job taken over by another worker", extra={"job_id": job_id})
        raise
    except Exception as exc:
        progress.write(status="failed", error=repr(exc), finished_at=text("now()"))
        _finish_audit(deps, audit_id, frozen, progress, "failed", repr(exc))
        raise
    if stop is not None and stop.is_set():
        progress.write()  # left running: claimed again once its heartbeat is stale
        return get(deps, job_id)  # type: ignore[return-value]
    for letter_id in frozen:  # moved by an earlier run of this job that died before writing
        if letter_id not in progress.outcomes:
            progress.record(letter_id, GONE, ok=True)
    progress.write(status="done", finished_at=text("now()"))
    _finish_audit(deps, audit_id, frozen, progress, "done")
    log.info("ops job done", extra={"job_id": job_id, "kind": job.kind, "actor": job.actor,
                                     "done": progress.done, "failed": progress.failed})
    return get(deps, job_id)  # type: ignore[return-value]


def _freeze(deps: Deps, queue: ParkingQueue, job: JobView, worker_id: str) -> tuple[list[str], int]:
    """Evaluate the selection once and record its ids, if this worker still owns the job."""
    selection = Selection.from_json(job.selection)
    ids = list(dict.fromkeys(dl.id for dl in selection.pick(read_all(deps, queue)[1])))
    with unit_of_work(deps.session_factory) as session:
        owned = session.execute(
            update(OpsJob).where(OpsJob.id == job.id, OpsJob.claimed_by == worker_id)
            .values(message_ids=ids, total=len(ids)).returning(OpsJob.id)).first()
        session.commit()
    if owned is None:
        raise JobLost(f"job {job.id} was claimed by another worker")
    audit_id = audit.begin(deps, job.actor, job.kind, ids, False)
    with unit_of_work(deps.session_factory) as session:
        session.execute(update(OpsJob).where(OpsJob.id == job.id).values(audit_id=audit_id))
        session.commit()
    return ids, audit_id


def _chunk_size(rate: float) -> int:
    """Messages held unacked at once: half of what the consumer timeout allows at this rate."""
    return max(1, min(1000, int(rate * console.MAX_HOLD_SECONDS / 2)))


def _move(queue: ParkingQueue, job: JobView, frozen: list[str], progress: _Progress,
          stop: threading.Event | None) -> None:
    pacer = _Pacer(queue, job.rate)
    wanted = set(frozen) - set(progress.outcomes)
    while wanted and not (stop is not None and stop.is_set()):
        with queue.hold() as held:
            chosen = [p for p in held.items if p.letter.id in wanted][: _chunk_size(job.rate)]
            keep = {p.tag for p in chosen}
            for parked in held.items:  # hand back at once what this chunk does not move
                if parked.tag not in keep:
                    held.release(parked)
            if not chosen:
                return
            for parked in _paced(chosen, pacer, stop):
                outcome, ok = _act(queue, held, parked, job.kind)
                progress.record(parked.letter.id, outcome, ok)
                wanted.discard(parked.letter.id)
                _log(job, parked, outcome, ok)
        progress.write()


def _paced(chosen: list[Parked], pacer: _Pacer, stop: threading.Event | None) -> Iterator[Parked]:
    for parked in chosen:
        if stop is not None and stop.is_set():
            return  # what is not acked goes back in place when the channel closes
        pacer.wait()
        yield parked


def _act(queue: ParkingQueue, held: Held, parked: Parked, kind: str) -> tuple[str, bool]:
    if kind == "purge":
        held.ack(parked)
        return PURGED, True
    outcome = queue.republish(parked.letter)
    ok = outcome == REPLAYED
    # The transactional move: ack only after the broker confirmed the copy.
    (held.ack if ok else held.release)(parked)
    return outcome, ok


def _log(job: JobView, parked: Parked, outcome: str, ok: bool) -> None:
    dl = parked.letter
    fields = {"job_id": job.id, "message_id": dl.id, "type": dl.type, "token_id": dl.token_id,
              "user_id": dl.user_id, "outcome": outcome, "actor": job.actor}
    if ok:
        log.info("message replayed" if job.kind == "replay" else "message purged", extra=fields)
    else:
        log.warning(f"message {job.kind} failed", extra=fields)


def _finish_audit(deps: Deps, audit_id: int | None, ids: list[str], progress: _Progress,
                  status: str, error: str | None = None) -> None:
    if audit_id is None:
        return
    result: dict[str, Any] = {"status": status, "outcomes": progress.outcomes,
                              "succeeded": progress.done, "failed": progress.failed}
    if error:
        result["error"] = error
    audit.finish(deps, audit_id, ids, result)
