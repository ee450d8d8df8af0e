"""The ops API (``/api/ops/``): dead letters, replay and purge jobs, the audit trail, the
books and the timers, for the console at ``/ops/`` and for scripts.

Roles are exact: reads take ``viewer`` or ``operator``; starting a job takes ``operator``
(a viewer gets 403). Reading the parking queue never spends a delivery attempt (see
shared/messaging/dead_letter_queue.py); a job is run by a worker's ``ops`` role, so it
survives the API process that accepted it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pika.exceptions import AMQPError
from pydantic import ValidationError
from spectree import SpecTree

from api.auth import authenticate
from api.body import invalid, parse, validation_details
from api.docs import documented
from api.errors import ApiError
from api.routes.common import container, deps
from schemas.ops_api import (
    AuditList,
    Books,
    DeadLetterDetails,
    DeadLetterList,
    DryRun,
    GroupList,
    Job,
    JobList,
    JobRequest,
    SampleList,
    SelectionQuery,
    Timers,
)
from shared.jwt_tokens import Principal
from shared.services import ops_jobs, ops_queries
from shared.services.ops_dead_letters import ParkingQueue, audit, console
from shared.services.ops_preview import preview
from shared.services.ops_reading import ReaderBusy, read_all
from shared.services.ops_selection import Filter, InvalidSelection, Selection
from shared.services.reconcile import reconcile

MAX_READ = 10_000  # dead letters read for one answer; the depth says if there are more
DEFAULT_LIST = 200
TAGS = ("ops console",)


def reader() -> Principal:
    return authenticate("operator", "viewer")


def actor() -> Principal:
    return authenticate("operator")


@contextmanager
def parking() -> Iterator[ParkingQueue]:
    """The parking queue, or a 503 when the broker does not answer."""
    try:
        with ParkingQueue.open(container().settings) as queue:
            yield queue
    except AMQPError as exc:
        raise ApiError(503, "service_unavailable",
                       {"dependency": "broker", "error": type(exc).__name__},
                       {"Retry-After": "1"}) from None
    except ReaderBusy:
        raise ApiError(503, "service_unavailable", {"reason": "parking queue busy"},
                       {"Retry-After": "1"}) from None


def _query() -> SelectionQuery:
    try:
        return SelectionQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(422, "validation_error", validation_details(exc)) from None


def _limit(q: SelectionQuery, default: int) -> int:
    if q.limit is not None and not 1 <= q.limit <= MAX_READ:
        raise invalid("limit", f"must be 1 to {MAX_READ}")
    return q.limit or default


def selection_of(q: SelectionQuery) -> Selection:
    """ids, else a group, else a filter (none given: everything parked)."""
    try:
        if q.ids:
            return Selection(ids=tuple(i for i in q.ids.split(",") if i))
        if q.group_exception_type is not None or q.group_reason is not None:
            if q.group_exception_type is None or q.group_reason is None:
                raise InvalidSelection("a group needs group_exception_type and group_reason")
            return Selection(group=(q.group_exception_type, q.group_reason))
        return Selection(filter=Filter(type=q.type, reason=q.reason,
                                       exception_type=q.exception_type,
                                       exception=q.exception,
                                       min_age_seconds=q.min_age_seconds))
    except InvalidSelection as exc:
        raise invalid("selection", str(exc)) from None


def dry_run_body(kind: str, selection: Selection, who: Principal | None) -> dict[str, Any]:
    """Each message's verdict and the total effect; recorded in the audit trail when
    ``who`` is given (an operator's dry run by POST: a GET writes nothing)."""
    with parking() as queue:
        rows, effect, truncated = preview(deps(), queue, selection, MAX_READ)
    if kind == "purge":  # a purge refunds nothing: every message is simply dropped
        rows = [{**r, "verdict": "would be purged", "effect": "no-op"} for r in rows]
        effect_json = {"messages": len(rows), "refunds": 0, "points_refunded": 0,
                       "users": 0, "no_ops": len(rows), "failures": 0, "other": 0}
    else:
        effect_json = effect.as_json()
    if who is not None:
        audit_id = audit.begin(deps(), who.sub, kind, [r["id"] for r in rows], True)
        audit.finish(deps(), audit_id, [r["id"] for r in rows],
                     {"status": "dry run", "effect": effect_json,
                      "verdicts": {r["id"]: r["verdict"] for r in rows}})
    return {"dry_run": True, "kind": kind, "selection": selection.as_json(),
            "effect": effect_json, "truncated": truncated, "messages": rows}


def books_json() -> dict[str, Any]:
    report = reconcile(deps())
    return {
        "clean": report.clean, "checked_at": report.checked_at.isoformat(),
        "grace_seconds": report.grace_seconds, "accounts": report.accounts,
        "tokens": report.tokens, "ledger_rows": report.ledger_rows,
        "elapsed_ms": round(report.elapsed_ms, 1), "truncated": report.truncated,
        "problems": [{"kind": p.kind, "user_id": p.user_id,
                      "token_id": str(p.token_id) if p.token_id else None,
                      "details": p.details} for p in report.problems],
    }


def blueprint(spec: SpecTree) -> Blueprint:
    bp = Blueprint("ops_console", __name__)

    @bp.get("/api/ops/dead-letters")
    @documented(spec, (200, DeadLetterList), 422, tags=TAGS, query=SelectionQuery)
    def list_dead_letters() -> Response:
        """Dead letters, oldest first, narrowed by a selection (viewer or operator)."""
        reader()
        q = _query()
        selection, limit = selection_of(q), _limit(q, DEFAULT_LIST)
        with parking() as queue:
            depth, read = read_all(deps(), queue, MAX_READ)
        letters = selection.pick(read)
        return jsonify({"depth": depth, "read": len(letters),
                        "messages": [dl.summary() for dl in letters[:limit]]})

    @bp.get("/api/ops/dead-letters/groups")
    @documented(spec, (200, GroupList), 422, tags=TAGS, query=SelectionQuery)
    def groups() -> Response:
        """Failures grouped by exception type and reason, with counts (viewer or operator)."""
        reader()
        selection = selection_of(_query())
        with parking() as queue:
            depth, read = read_all(deps(), queue, MAX_READ)
        letters = selection.pick(read)
        return jsonify({"depth": depth, "read": len(letters), "groups": [
            {"exception_type": e, "reason": r, "count": n} for e, r, n in console.group(letters)]})

    @bp.get("/api/ops/dead-letters/effect")
    @documented(spec, (200, DryRun), 422, tags=TAGS, query=SelectionQuery)
    def effect() -> Response:
        """Dry run of a replay of a selection: each message's verdict against the
        database, and the total effect. Changes nothing, writes nothing (viewer or
        operator); an operator's dry run by ``POST /api/ops/jobs`` is kept in the history."""
        reader()
        return jsonify(dry_run_body("replay", selection_of(_query()), None))

    @bp.get("/api/ops/dead-letters/<message_id>")
    @documented(spec, (200, DeadLetterDetails), 404, tags=TAGS)
    def show(message_id: str) -> Response:
        """One dead letter whole: headers, body, attempts, exception, origin."""
        reader()
        with parking() as queue:
            found = [dl for dl in read_all(deps(), queue, MAX_READ)[1] if dl.id == message_id]
        if not found:
            raise ApiError(404, "dead_letter_not_found", {"id": message_id})
        return jsonify({**found[0].details(), "copies": len(found)})

    @bp.post("/api/ops/jobs")
    @documented(spec, (202, Job), 400, 422, tags=TAGS, json=JobRequest)
    def start_job() -> Response:
        """Start a replay or purge of a selection (operator). With ``dry_run``: 200 and
        the effect, nothing started. Otherwise 202 and the job to poll."""
        who = actor()
        body = parse(JobRequest)
        selection = Selection.from_json(body.selection.model_dump(exclude_none=True))
        if body.dry_run:
            return jsonify(dry_run_body(body.kind, selection, who))
        job = ops_jobs.create(deps(), body.kind, selection, who.sub,
                              body.rate or ops_jobs.DEFAULT_RATE)
        response = jsonify(job.as_json())
        response.status_code = 202
        response.headers["Location"] = f"/api/ops/jobs/{job.id}"
        return response

    @bp.get("/api/ops/jobs")
    @documented(spec, (200, JobList), tags=TAGS)
    def jobs() -> Response:
        """The latest jobs, newest first, with their progress."""
        reader()
        return jsonify({"jobs": [j.as_json() for j in ops_jobs.latest(deps())]})

    @bp.get("/api/ops/jobs/<int:job_id>")
    @documented(spec, (200, Job), 404, tags=TAGS)
    def job(job_id: int) -> Response:
        """One job's progress (done / total / failed) and each message's outcome."""
        reader()
        found = ops_jobs.get(deps(), job_id)
        if found is None:
            raise ApiError(404, "job_not_found", {"id": job_id})
        return jsonify(found.as_json(with_outcomes=True))

    @bp.get("/api/ops/audit")
    @documented(spec, (200, AuditList), tags=TAGS)
    def history() -> Response:
        """Who did what and when, with the result: replays, purges, dry runs."""
        reader()
        return jsonify({"entries": [r.as_json() for r in audit.history(deps(), 100)]})

    @bp.get("/api/ops/books")
    @documented(spec, (200, Books), tags=TAGS)
    def books() -> Response:
        """The reconcile report (read-only): does every point add up?"""
        reader()
        return jsonify(books_json())

    @bp.get("/api/ops/timers")
    @documented(spec, (200, Timers), tags=TAGS)
    def timers() -> Response:
        """Expiry lateness percentiles, tokens past due, outbox backlog, dead-letter
        depth and consumers per queue, now."""
        reader()
        figures = ops_queries.database_figures(deps())
        with parking() as queue:
            figures.update(ops_queries.broker_figures(queue.connection, queue.names))
        return jsonify(figures)

    @bp.get("/api/ops/samples")
    @documented(spec, (200, SampleList), tags=TAGS)
    def samples() -> Response:
        """The figures sampled by the workers over the last hour, oldest first."""
        reader()
        return jsonify({"samples": [{"at": at.isoformat(), "figures": f}
                                    for at, f in ops_queries.samples(deps(), 3600)]})

    return bp
