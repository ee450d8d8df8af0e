"""The answer a loser of a race gets must say what really happened to the token.

Each transaction has its own ``now()`` (its start time), so two transactions a few
milliseconds apart can disagree about whether a token has expired: the one that began
first may still redeem or cancel it, while the later one already sees it as past its
expiry. These tests replay that interleaving deterministically: a third connection holds
the token's row lock, the "earlier" service call queues behind it first, the "later" one
second, then the lock is released. Two clocks a second apart stand for the two ``now()``.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text

from shared import services
from shared.errors import DomainError, TokenAlreadyRedeemed, TokenExpired
from shared.services.deps import Deps
from tests.integration.foundation.books import assert_books_balance
from tests.support.clock import FixedClock

pytestmark = pytest.mark.timeout(60)


def waiting_on_locks(deps: Deps) -> int:
    with deps.session_factory() as s:
        return s.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                 " AND wait_event_type = 'Lock'")
        ).scalar_one()


def call(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except DomainError as exc:
        return exc


def interleave(deps: Deps, token_id, first, second) -> tuple[object, object]:  # type: ignore[no-untyped-def]
    """Run ``first`` then ``second``, each blocked on the token's row lock in that order,
    then release the lock; return both results."""
    holder = deps.session_factory()
    holder.execute(
        text("SELECT 1 FROM exchange_tokens WHERE id = :id FOR UPDATE"), {"id": token_id}
    )
    baseline = waiting_on_locks(deps)
    with ThreadPoolExecutor(2) as pool:
        try:
            futures: list[Future[object]] = []
            for fn in (first, second):
                futures.append(pool.submit(fn))
                deadline = time.monotonic() + 10
                while waiting_on_locks(deps) < baseline + len(futures):
                    assert time.monotonic() < deadline, "the call never queued on the lock"
                    time.sleep(0.01)
        finally:
            holder.rollback()
            holder.close()
        return futures[0].result(timeout=10), futures[1].result(timeout=10)


@pytest.fixture
def race(container, user):  # type: ignore[no-untyped-def]
    """A token of ``user`` and two views of time: just before and just after its expiry."""
    issuing = FixedClock()
    deps = replace(container.deps, clock=issuing, token_ttl_seconds=180)
    services.credit(deps, user, 10)
    token = services.issue(deps, user, 10).token
    early = replace(deps, clock=FixedClock(token.expires_at - timedelta(seconds=1)))
    late = replace(deps, clock=FixedClock(token.expires_at + timedelta(seconds=1)))
    return token, early, late


def test_a_cancel_that_loses_to_a_redeem_says_already_redeemed(race, user, merchant):
    token, early, late = race
    redeemed, cancelled = interleave(
        early, token.id,
        lambda: call(services.redeem, early, token.code, merchant),
        lambda: call(services.cancel, late, user, token.id),
    )
    assert not isinstance(redeemed, DomainError) and redeemed.status == "redeemed"
    # Not "expired, 10 points restored": no point came back, the token was spent.
    assert isinstance(cancelled, TokenAlreadyRedeemed), cancelled
    assert services.balance(early, user) == 0
    assert_books_balance(early.session_factory, [user])


def test_a_late_redeem_that_loses_to_an_earlier_redeem_says_already_redeemed(
    race, user, merchant
):
    token, early, late = race
    first, second = interleave(
        early, token.id,
        lambda: call(services.redeem, early, token.code, merchant),
        lambda: call(services.redeem, late, token.code, "another-merchant"),
    )
    assert not isinstance(first, DomainError) and first.merchant_id == merchant
    assert isinstance(second, TokenAlreadyRedeemed), second
    assert services.balance(early, user) == 0
    assert_books_balance(early.session_factory, [user])


def test_a_late_redeem_that_loses_to_a_cancel_says_cancelled(race, user, merchant):
    token, early, late = race
    cancelled, redeemed = interleave(
        early, token.id,
        lambda: call(services.cancel, early, user, token.id),
        lambda: call(services.redeem, late, token.code, merchant),
    )
    assert not isinstance(cancelled, DomainError) and cancelled.points_restored == 10
    assert isinstance(redeemed, TokenExpired), redeemed
    assert redeemed.details == {"points_restored": 10, "reason": "cancelled"}
    assert services.balance(early, user) == 10
    assert_books_balance(early.session_factory, [user])


def test_a_late_cancel_after_an_expiry_reports_the_single_refund(race, user):
    token, early, late = race
    expired, cancelled = interleave(
        late, token.id,
        lambda: services.expire(late, token.id),
        lambda: call(services.cancel, late, user, token.id),
    )
    assert expired.restored is not None and expired.restored.points == 10
    assert isinstance(cancelled, TokenExpired), cancelled
    assert cancelled.details == {"points_restored": 10, "reason": "expired"}
    assert services.balance(late, user) == 10  # refunded once, not twice
    assert_books_balance(late.session_factory, [user])

