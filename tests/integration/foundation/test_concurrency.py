"""Races on real PostgreSQL: threads, each service call its own transaction, on the
database's own clock. What decides each race is PostgreSQL's row locking: a conditional
UPDATE or DELETE that waited for a concurrent one re-checks its WHERE on the new row
(READ COMMITTED), so only one transaction can move a token out of ``active``."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from sqlalchemy import text

from shared import services
from shared.errors import (
    DomainError,
    InsufficientPoints,
    TokenAlreadyRedeemed,
    TokenExpired,
    TooManyActiveTokens,
)
from shared.services.deps import Deps
from shared.services.views import TokenView
from tests.integration.foundation.books import assert_books_balance
from tests.integration.foundation.conftest import THREADS

pytestmark = pytest.mark.timeout(120)


def outcome(fn, *args) -> str | DomainError:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
        return "ok"
    except DomainError as exc:
        return exc


def issue_at_once(deps: Deps, user: str, points: int, threads: int = 16) -> list:
    """``threads`` issues of ``points`` for one user, released together by a barrier."""
    start = threading.Barrier(threads)

    def attempt(_: int) -> str | DomainError:
        start.wait()
        return outcome(services.issue, deps, user, points)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(attempt, range(threads)))


def final_states(deps: Deps, token_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each token's end state as the database records it: its live status, or the reason
    of its refund; "+" joins several, which must never happen."""
    states: dict[uuid.UUID, list[str]] = defaultdict(list)
    with deps.session_factory() as s:
        for tid, status in s.execute(
            text("SELECT id, status FROM exchange_tokens WHERE id = ANY(:ids)"),
            {"ids": token_ids},
        ):
            states[tid].append(status)
        for tid, reason in s.execute(
            text("SELECT token_id, reason FROM ledger WHERE kind = 'refund'"
                 " AND token_id = ANY(:ids)"),
            {"ids": token_ids},
        ):
            states[tid].append(f"refunded:{reason}")
    return {tid: "+".join(sorted(states.get(tid, ["nothing"]))) for tid in token_ids}


def test_32_threads_redeeming_one_code_give_exactly_one_success(wide_deps, user):
    services.credit(wide_deps, user, 10)
    token = services.issue(wide_deps, user, 10).token
    start = threading.Barrier(THREADS)

    def attempt(i: int) -> str | DomainError:
        start.wait()
        return outcome(services.redeem, wide_deps, token.code, f"merchant-{i}")

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(attempt, range(THREADS)))

    assert results.count("ok") == 1
    refusals = [r for r in results if r != "ok"]
    assert len(refusals) == THREADS - 1
    assert all(isinstance(r, TokenAlreadyRedeemed) for r in refusals), refusals
    assert final_states(wide_deps, [token.id]) == {token.id: "redeemed"}
    with wide_deps.session_factory() as s:
        events = s.execute(
            text("SELECT count(*) FROM outbox WHERE event_type = 'TokenRedeemed'"
                 " AND payload->>'token_id' = :t"),
            {"t": str(token.id)},
        ).scalar_one()
    assert events == 1  # one redemption, one event: exactly one exchange request follows


def test_16_threads_issuing_never_overdraw_and_every_refusal_is_insufficient_points(
    wide_deps, user
):
    deps = replace(wide_deps, max_active_tokens=100)
    services.credit(deps, user, 100)
    results = issue_at_once(deps, user, 15)

    successes = results.count("ok")
    assert successes == 100 // 15  # the balance covers exactly six: no fewer, no more
    assert successes * 15 <= 100
    refusals = [r for r in results if r != "ok"]
    assert all(isinstance(r, InsufficientPoints) for r in refusals), refusals
    assert services.balance(deps, user) == 100 - successes * 15
    assert_books_balance(deps.session_factory, [user])


def test_200_tokens_redeemed_and_expired_at_the_boundary_each_end_in_one_state(
    wide_deps, db_time
):
    """Redeemers aim just before each token's expires_at and expirers just after, each
    with some jitter, while sweepers sweep all the time: whoever wins, a token ends either
    redeemed or refunded, never both, never neither, and not a point is lost."""
    deps = replace(wide_deps, token_ttl_seconds=2, max_active_tokens=1000)
    users = [f"race-{uuid.uuid4().hex[:8]}-{i}" for i in range(8)]
    rng = random.Random(20261124)

    def issue_for(u: str) -> list[TokenView]:
        services.credit(deps, u, 10_000)
        return [services.issue(deps, u, rng.randint(1, 50)).token for _ in range(25)]

    with ThreadPoolExecutor(len(users)) as pool:
        tokens = [t for batch in pool.map(issue_for, users) for t in batch]
    tokens.sort(key=lambda t: t.expires_at)
    assert len(tokens) == 200

    redeemed_by: Counter[uuid.UUID] = Counter()
    restored_by: Counter[uuid.UUID] = Counter()
    unexpected: list[object] = []
    lock = threading.Lock()
    done = threading.Event()

    def redeemer(shard: int) -> None:
        for t in tokens[shard::4]:
            db_time.sleep_until(t.expires_at, rng.uniform(-0.03, 0.005))
            result = outcome(services.redeem, deps, t.code, "merchant-race")
            with lock:
                if result == "ok":
                    redeemed_by[t.id] += 1
                elif not isinstance(result, TokenExpired):
                    unexpected.append(result)

    def expirer(shard: int) -> None:
        for t in tokens[shard::4]:
            db_time.sleep_until(t.expires_at, rng.uniform(-0.005, 0.03))
            for _ in range(50):  # a timer that fired early tries again, as a worker would
                got = services.expire(deps, t.id)
                if got.not_due_until is None:
                    break
                db_time.sleep_until(got.not_due_until)
            if got.restored is not None:
                with lock:
                    restored_by[t.id] += 1

    def sweeper() -> None:
        while not done.is_set():
            for r in services.sweep(deps, limit=20):
                with lock:
                    restored_by[r.token_id] += 1
            done.wait(0.01)

    sweepers = [threading.Thread(target=sweeper) for _ in range(2)]
    for s in sweepers:
        s.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(redeemer, i) for i in range(4)]
            jobs += [pool.submit(expirer, i) for i in range(4)]
            for job in jobs:
                job.result()
    finally:
        done.set()
        for s in sweepers:
            s.join()

    assert unexpected == []
    ids = [t.id for t in tokens]
    states = final_states(deps, ids)
    assert set(states.values()) <= {"redeemed", "refunded:expired"}, Counter(states.values())
    for tid in ids:
        if states[tid] == "redeemed":
            assert redeemed_by[tid] == 1 and restored_by[tid] == 0, tid
        else:
            # Refunded by an expirer, a sweeper, or a redeem's own sweep of the owner.
            assert redeemed_by[tid] == 0 and restored_by[tid] <= 1, tid
    counts = Counter(states.values())
    # The race really happened at the boundary: both sides won some tokens.
    assert counts["redeemed"] > 0 and counts["refunded:expired"] > 0, counts
    assert_books_balance(deps.session_factory, users)
    with deps.session_factory() as s:
        redeemed_at_ok = s.execute(
            text("SELECT bool_and(redeemed_at < expires_at) FROM exchange_tokens"
                 " WHERE id = ANY(:ids) AND status = 'redeemed'"),
            {"ids": ids},
        ).scalar_one()
    assert redeemed_at_ok  # PostgreSQL's clock decided: no redemption at or after expiry


def test_cancel_redeem_and_expire_racing_on_one_token_give_exactly_one_outcome(
    wide_deps, db_time, user, merchant
):
    """Ten tokens, each raced by its owner cancelling, a merchant redeeming and a timer
    expiring it, all released together around its expiry instant."""
    deps = replace(wide_deps, token_ttl_seconds=1, max_active_tokens=100)
    services.credit(deps, user, 1000)
    tokens = [services.issue(deps, user, 7).token for _ in range(10)]
    offsets = [-0.02 + 0.004 * i for i in range(len(tokens))]  # from 20 ms early to 16 ms late

    def race(t: TokenView, offset: float) -> tuple[uuid.UUID, dict[str, object]]:
        barrier = threading.Barrier(3)

        def go(name: str):  # type: ignore[no-untyped-def]
            db_time.sleep_until(t.expires_at, offset)
            barrier.wait()
            if name == "cancel":
                return outcome(services.cancel, deps, user, t.id)
            if name == "redeem":
                return outcome(services.redeem, deps, t.code, merchant)
            return "ok" if services.expire(deps, t.id).restored else "nothing"

        with ThreadPoolExecutor(3) as trio:
            futures = {n: trio.submit(go, n) for n in ("cancel", "redeem", "expire")}
            return t.id, {n: f.result() for n, f in futures.items()}

    with ThreadPoolExecutor(len(tokens)) as pool:
        results = dict(pool.map(race, tokens, offsets))

    states = final_states(deps, list(results))
    for tid, got in results.items():
        winners = [n for n, r in got.items() if r == "ok"]
        state = states[tid]
        if state == "redeemed":
            assert winners == ["redeem"], got
            assert isinstance(got["cancel"], TokenAlreadyRedeemed), got
        elif state == "refunded:cancelled":
            assert winners == ["cancel"], got
            assert isinstance(got["redeem"], TokenExpired), got
            assert got["redeem"].details["reason"] == "cancelled"
        else:
            assert state == "refunded:expired", state
            # The timer, or the owner's cancel or the redeem arriving too late (each
            # refunds an expired token on the spot and says so): one refund either way.
            assert winners in ([], ["expire"]), got
            for n in ("cancel", "redeem"):
                assert isinstance(got[n], TokenExpired), got
                assert got[n].details == {"points_restored": 7, "reason": "expired"}
    books = assert_books_balance(deps.session_factory, [user])
    assert books[user].credits == 1000


def test_16_threads_issuing_never_exceed_the_active_token_limit(wide_deps, user):
    # The limit is counted after the account lock, in a fresh snapshot (migration 0003):
    # a count taken before the lock wait would let every waiter see the same few tokens.
    deps = replace(wide_deps, max_active_tokens=3)
    services.credit(deps, user, 1000)
    results = issue_at_once(deps, user, 1)

    assert results.count("ok") == 3
    refusals = [r for r in results if r != "ok"]
    assert all(isinstance(r, TooManyActiveTokens) for r in refusals), refusals
    assert services.balance(deps, user) == 1000 - 3
    assert_books_balance(deps.session_factory, [user])


def test_a_redeem_does_not_wait_for_an_expired_token_of_the_owner_someone_holds(
    fixed_deps, clock, user
):
    """A successful redeem holds its token, then restores the owner's expired ones. An
    expiry batch holding one of those may be waiting for the redeemed token (it locks in
    (expires_at, id) order): a deadlock, or with the batch's own lock timeout, a refused
    scan. The redeem takes the owner's other tokens with SKIP LOCKED and leaves the held
    one to its holder."""
    services.credit(fixed_deps, user, 10)
    held = services.issue(fixed_deps, user, 2).token
    clock.advance(100)
    scanned = services.issue(fixed_deps, user, 3).token
    clock.advance(100)  # held is past its expiry, scanned is not
    holder = fixed_deps.engine.connect()
    try:
        holder.execute(text("SELECT id FROM exchange_tokens WHERE id = :id FOR UPDATE"),
                       {"id": held.id})  # as an expiry batch does before its refunds
        result: list[object] = []
        redeeming = threading.Thread(target=lambda: result.append(
            outcome(services.redeem, fixed_deps, scanned.code, "m-1")))
        redeeming.start()
        redeeming.join(timeout=10)  # the lock is still held: old code waited on it
        assert result == ["ok"]
        states = final_states(fixed_deps, [held.id, scanned.id])
        assert states == {held.id: "active", scanned.id: "redeemed"}  # held: its holder's
    finally:
        holder.rollback()
        holder.close()
    services.status(fixed_deps, user)  # the holder gone, the owner's next call restores it
    assert final_states(fixed_deps, [held.id])[held.id] == "refunded:expired"
