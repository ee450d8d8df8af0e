"""The ops API against the real API process, workers, PostgreSQL and RabbitMQ: roles,
dry runs whose effect is what the database shows after the replay, jobs that survive the
API, rate limits, purges and the audit trail."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
from sqlalchemy import func, select

from shared.persistence.tables import LedgerEntry
from shared.services.expire import expire
from tests.integration.ops_console.conftest import start_workers
from tests.support.ops_stack import (
    call,
    depth,
    expired_tokens,
    park_poison,
    park_timers,
    token,
    wait_for,
)

GROUP = {"exception_type": "RuntimeError", "reason": "exhausted"}


def users(n: int) -> list[str]:
    return [f"ops-user-{uuid.uuid4().hex[:10]}" for _ in range(n)]


def refunded(deps, token_ids) -> tuple[int, int, int]:
    """(refund rows, points refunded, distinct users) for these tokens, from the ledger."""
    with deps.session_factory() as session:
        row = session.execute(
            select(func.count(), func.coalesce(func.sum(LedgerEntry.amount), 0),
                   func.count(func.distinct(LedgerEntry.user_id)))
            .where(LedgerEntry.kind == "refund", LedgerEntry.token_id.in_(token_ids))
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def wait_job(url: str, bearer: str, job_id: int, timeout: float = 60) -> dict:
    def finished():
        _, job = call(f"{url}/api/ops/jobs/{job_id}", bearer)
        return job if job["status"] in ("done", "failed") else None
    return wait_for(finished, timeout, f"job {job_id} to finish", interval=0.2)


@pytest.fixture
def api(stack):
    return stack.api()


@pytest.fixture
def operator(ops_settings):
    return token(ops_settings, "olga", "operator")


@pytest.fixture
def viewer(ops_settings):
    return token(ops_settings, "victor", "viewer")


def test_reads_take_viewer_or_operator_and_actions_take_operator(api, channel, ops_topology,
                                                                 operator, viewer, ops_settings):
    park_poison(channel, ops_topology, 2)
    selection = {"kind": "purge", "selection": {"filter": {}}}
    for bearer in (viewer, operator):
        status, body = call(f"{api}/api/ops/dead-letters", bearer)
        assert status == 200 and body["depth"] == 2
    status, body = call(f"{api}/api/ops/jobs", viewer, "POST", selection)
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, _ = call(f"{api}/api/ops/jobs", viewer, "POST", {**selection, "dry_run": True})
    assert status == 403
    # Roles are exact: an admin or a user is not a viewer.
    for roles in (("admin",), ("user",), ("merchant",)):
        status, _ = call(f"{api}/api/ops/timers", token(ops_settings, "x", *roles))
        assert status == 403
    status, body = call(f"{api}/api/ops/audit", "not-a-token")
    assert status == 401
    assert depth(channel, ops_topology.names.dead_letter_queue) == 2  # nothing happened


def test_every_ops_route_is_in_the_openapi_document(api, operator):
    _, doc = call(f"{api}/api/openapi.json", operator)
    paths = {p for p in doc["paths"] if p.startswith("/api/ops/")}
    assert {"/api/ops/dead-letters", "/api/ops/dead-letters/groups",
            "/api/ops/dead-letters/effect", "/api/ops/dead-letters/{message_id}",
            "/api/ops/jobs", "/api/ops/jobs/{job_id}", "/api/ops/audit", "/api/ops/books",
            "/api/ops/timers", "/api/ops/samples"} <= paths


def test_bad_selections_are_refused_and_change_nothing(api, channel, ops_topology, operator):
    park_poison(channel, ops_topology, 1)
    for body in ({"kind": "replay", "selection": {}},
                 {"kind": "replay", "selection": {"ids": ["a"], "filter": {}}},
                 {"kind": "replay", "selection": {"ids": []}},
                 {"kind": "explode", "selection": {"filter": {}}},
                 {"kind": "replay", "selection": {"filter": {}}, "rate": 5000},
                 {"kind": "replay", "selection": {"filter": {}}, "rate": 0.01}):
        status, answer = call(f"{api}/api/ops/jobs", operator, "POST", body)
        assert status == 422, body
        assert answer["error"]["code"] == "validation_error"
    status, _ = call(f"{api}/api/ops/dead-letters?group_reason=poison", operator)
    assert status == 422
    status, answer = call(f"{api}/api/ops/dead-letters/no-such-id", operator)
    assert status == 404 and answer["error"]["code"] == "dead_letter_not_found"
    assert call(f"{api}/api/ops/jobs/999999999", operator)[0] == 404
    assert depth(channel, ops_topology.names.dead_letter_queue) == 1


def test_groups_and_one_message_whole(api, channel, ops_topology, deps, viewer):
    tokens = expired_tokens(deps, users(1), 10, 3)
    ids = park_timers(channel, ops_topology, tokens)
    park_poison(channel, ops_topology, 2)
    _, body = call(f"{api}/api/ops/dead-letters/groups", viewer)
    assert body["groups"] == [{**GROUP, "count": 3},
                              {"exception_type": "ValidationError", "reason": "poison", "count": 2}]
    _, body = call(f"{api}/api/ops/dead-letters?type=TokenExpired&limit=2", viewer)
    assert body["read"] == 3 and len(body["messages"]) == 2
    _, one = call(f"{api}/api/ops/dead-letters/{ids[0]}", viewer)
    assert one["id"] == ids[0] and one["attempts"] == 5 and one["copies"] == 1
    assert one["exception"] == "RuntimeError: database unavailable"
    assert one["body"]["token_id"] == str(tokens[0].id)
    assert one["original_queue"] == ops_topology.names.consumer_queue("expire")
    assert depth(channel, ops_topology.names.dead_letter_queue) == 5  # reading took nothing


def test_the_dry_run_effect_is_what_the_database_shows_after_the_replay(
        stack, api, channel, ops_topology, deps, operator, viewer):
    # Given timers of 12 expired tokens of 3 users, 2 of them already refunded elsewhere,
    # and 2 poison messages in another group
    start_workers(stack, channel, ops_topology)
    tokens = expired_tokens(deps, users(3), 25, 4)
    park_timers(channel, ops_topology, tokens)
    park_poison(channel, ops_topology, 2)
    for t in tokens[:2]:  # the sweep got there first
        expire(deps, t.id)

    # When the group is previewed (a viewer may), then replayed
    status, dry = call(f"{api}/api/ops/dead-letters/effect?group_exception_type=RuntimeError"
                       "&group_reason=exhausted", viewer)
    assert status == 200
    assert dry["effect"] == {"messages": 12, "refunds": 10, "points_refunded": 250, "users": 3,
                             "no_ops": 2, "failures": 0, "other": 0}
    assert dry["truncated"] is False
    assert refunded(deps, [t.id for t in tokens[2:]]) == (0, 0, 0)  # the dry run changed nothing
    _, history = call(f"{api}/api/ops/audit", viewer)
    assert not [e for e in history["entries"] if e["actor"] == "victor"]  # nor wrote a row
    status, job = call(f"{api}/api/ops/jobs", operator, "POST",
                       {"kind": "replay", "selection": {"group": GROUP}, "rate": 500})
    assert status == 202 and job["status"] == "queued"
    done = wait_job(api, operator, job["id"])

    # Then every message went once, and the database shows exactly the effect announced
    assert (done["status"], done["total"], done["done"], done["failed"]) == ("done", 12, 12, 0)
    assert set(done["outcomes"].values()) == {"replayed"}
    wait_for(lambda: refunded(deps, [t.id for t in tokens[2:]])[0] == 10, 30, "the refunds")
    time.sleep(0.5)
    assert refunded(deps, [t.id for t in tokens[2:]]) == (10, 250, 3)
    assert refunded(deps, [t.id for t in tokens[:2]])[0] == 2  # refunded once, never twice
    assert depth(channel, ops_topology.names.dead_letter_queue) == 2  # the poison group stays
    # And the timers show those refunds as an hour late
    _, timers = call(f"{api}/api/ops/timers", viewer)
    assert timers["expiry_lateness"]["refunds"] >= 12
    assert timers["expiry_lateness"]["p99"] >= 3000
    # And the ops role has sampled the figures for the charts
    _, samples = call(f"{api}/api/ops/samples", viewer)
    assert samples["samples"], "no sample taken by the ops role"
    assert {"expiry_lateness", "outbox", "dead_letters", "queues"} <= set(
        samples["samples"][-1]["figures"])


def test_a_job_survives_the_api_process_that_started_it(stack, api, channel, ops_topology,
                                                        deps, operator):
    start_workers(stack, channel, ops_topology)
    tokens = expired_tokens(deps, users(2), 5, 10)
    park_timers(channel, ops_topology, tokens)
    _, job = call(f"{api}/api/ops/jobs", operator, "POST",
                  {"kind": "replay", "selection": {"filter": {"type": "TokenExpired"}},
                   "rate": 10})
    stack.kill("api")  # the API is gone while the job runs (20 messages at 10/s)
    wait_for(lambda: refunded(deps, [t.id for t in tokens])[0] == 20, 60, "every refund")
    url = stack.api()  # a new API process reads the finished job
    done = wait_job(url, operator, job["id"])
    assert (done["status"], done["done"], done["failed"]) == ("done", 20, 0)
    assert refunded(deps, [t.id for t in tokens]) == (20, 100, 2)
    assert depth(channel, ops_topology.names.dead_letter_queue) == 0


def test_a_job_moves_no_faster_than_its_rate(stack, api, channel, ops_topology, operator):
    start_workers(stack, channel, ops_topology)
    park_poison(channel, ops_topology, 10)
    _, job = call(f"{api}/api/ops/jobs", operator, "POST",
                  {"kind": "purge", "selection": {"group": {"exception_type": "ValidationError",
                                                            "reason": "poison"}}, "rate": 5})
    done = wait_job(api, operator, job["id"])
    took = (datetime.fromisoformat(done["finished_at"])
            - datetime.fromisoformat(done["started_at"])).total_seconds()
    # 10 messages at 5 a second: the first goes at once, the tenth 1.8 s later.
    assert took >= 1.7, took
    assert done["done"] == 10 and depth(channel, ops_topology.names.dead_letter_queue) == 0


def test_a_purge_drops_its_selection_only_and_the_history_says_who(
        stack, api, channel, ops_topology, deps, operator, viewer):
    start_workers(stack, channel, ops_topology)
    tokens = expired_tokens(deps, users(1), 7, 2)
    timer_ids = park_timers(channel, ops_topology, tokens)
    park_poison(channel, ops_topology, 3)
    poison = {"exception_type": "ValidationError", "reason": "poison"}
    status, dry = call(f"{api}/api/ops/jobs", operator, "POST",
                       {"kind": "purge", "selection": {"group": poison}, "dry_run": True})
    assert status == 200 and dry["effect"]["messages"] == 3
    assert depth(channel, ops_topology.names.dead_letter_queue) == 5
    _, job = call(f"{api}/api/ops/jobs", operator, "POST",
                  {"kind": "purge", "selection": {"group": poison}})
    done = wait_job(api, operator, job["id"])
    assert (done["status"], done["done"]) == ("done", 3)
    assert set(done["outcomes"].values()) == {"purged"}
    _, left = call(f"{api}/api/ops/dead-letters", viewer)
    assert sorted(m["id"] for m in left["messages"]) == sorted(timer_ids)
    assert refunded(deps, [t.id for t in tokens])[0] == 0  # a purge refunds nothing

    _, history = call(f"{api}/api/ops/audit", viewer)
    mine = [e for e in history["entries"] if e["actor"] == "olga"][:2]
    assert [(e["action"], e["dry_run"]) for e in mine] == [("purge", False), ("purge", True)]
    assert mine[0]["result"]["status"] == "done" and mine[0]["result"]["succeeded"] == 3
    assert sorted(mine[0]["message_ids"]) == ["poison-0", "poison-1", "poison-2"]
    assert mine[1]["result"]["effect"]["messages"] == 3


def test_the_books_and_the_timers(api, channel, ops_topology, deps, viewer):
    tokens = expired_tokens(deps, users(1), 3, 2)
    park_poison(channel, ops_topology, 1)
    status, books = call(f"{api}/api/ops/books", viewer)
    # Tokens past due that no timer refunded are what the books flag (the database is
    # shared by this session's tests, so only ours are looked for).
    assert status == 200 and books["clean"] is False
    overdue = {p["token_id"] for p in books["problems"] if p["kind"] == "overdue_active_token"}
    assert {str(t.id) for t in tokens} <= overdue
    status, timers = call(f"{api}/api/ops/timers", viewer)
    assert status == 200
    assert timers["past_due"]["tokens"] >= 2
    assert timers["past_due"]["oldest_seconds"] >= 3000  # issued an hour ago
    assert timers["dead_letters"]["depth"] == 1
    queues = {q["queue"]: q for q in timers["queues"]}
    assert queues[ops_topology.names.consumer_queue("expire")]["consumers"] == 0
    assert {"p50", "p90", "p99", "refunds"} <= set(timers["expiry_lateness"])


def test_with_the_broker_away_reads_and_dry_runs_answer_503_promptly(stack, deps, viewer,
                                                                     operator):
    from tests.support.ops_stack import free_port

    url = stack.api(AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    started = time.monotonic()
    status, body = call(f"{url}/api/ops/dead-letters", viewer)
    assert status == 503 and body["error"]["details"]["dependency"] == "broker"
    status, _ = call(f"{url}/api/ops/jobs", operator, "POST",
                     {"kind": "replay", "selection": {"filter": {}}, "dry_run": True})
    assert status == 503
    assert time.monotonic() - started < 15
