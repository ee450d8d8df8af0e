"""A hypothesis state machine drives the real services on real PostgreSQL with a clock it
moves by hand, and checks two things after every step:

- the books balance (points conserved, balance = sum of the ledger, no token both
  redeemed and restored, at most one refund per token, no negative balance);
- a model in plain Python predicted each service's answer: success, or which refusal.

Expire, cancel and redeem are called duplicated and out of order: before the token is
due, twice, after a redeem, after a cancel, on tokens of another user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from shared import services
from shared.errors import (
    DomainError,
    InsufficientPoints,
    TokenAlreadyRedeemed,
    TokenExpired,
    TokenNotFound,
    TooManyActiveTokens,
)
from shared.services.deps import Deps
from shared.services.sweep import sweep_all
from tests.integration.foundation.books import assert_books_balance
from tests.support.clock import FixedClock

TTL = 180
MAX_ACTIVE = 4
START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class ModelToken:
    id: uuid.UUID
    code: str
    owner: str
    points: int
    expires_at: datetime
    state: str  # active | redeemed | expired | cancelled


class LedgerMachine(RuleBasedStateMachine):
    base_deps: Deps  # set by the test before running

    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        run = uuid.uuid4().hex[:8]
        self.users = [f"sm-{run}-u{i}" for i in range(3)]
        self.merchants = [f"sm-{run}-m{i}" for i in range(2)]
        self.clock = FixedClock(START)
        self.deps = replace(
            self.base_deps, clock=self.clock, token_ttl_seconds=TTL, max_active_tokens=MAX_ACTIVE
        )
        self.now = START
        self.balance = {u: 0 for u in self.users}
        self.model: dict[uuid.UUID, ModelToken] = {}

    # The model ------------------------------------------------------------------------
    def _due(self, t: ModelToken) -> bool:
        return t.state == "active" and t.expires_at <= self.now

    def _restore_due(self, owner: str | None) -> set[uuid.UUID]:
        """What a sweep of ``owner`` (or everyone) restores: every due active token."""
        done = set()
        for t in self.model.values():
            if self._due(t) and (owner is None or t.owner == owner):
                t.state = "expired"
                self.balance[t.owner] += t.points
                done.add(t.id)
        return done

    def _gone(self, t: ModelToken) -> tuple[int, str]:
        return (t.points, t.state)

    def _by_code(self, code: str) -> ModelToken | None:
        return next((t for t in self.model.values() if t.code == code), None)

    @staticmethod
    def _call(fn, *args):  # type: ignore[no-untyped-def]
        try:
            return fn(*args), None
        except DomainError as exc:
            return None, exc

    # Rules ----------------------------------------------------------------------------
    @rule(u=st.integers(0, 2), points=st.integers(1, 100))
    def credit(self, u: int, points: int) -> None:
        user = self.users[u]
        assert services.credit(self.deps, user, points, "test") == self.balance[user] + points
        self.balance[user] += points

    @rule(target=tokens, u=st.integers(0, 2), points=st.integers(1, 60))
    def issue(self, u: int, points: int):  # type: ignore[no-untyped-def]
        user = self.users[u]
        self._restore_due(user)  # issue sweeps the user first, even when it refuses
        active = sum(1 for t in self.model.values() if t.owner == user and t.state == "active")
        issued, err = self._call(services.issue, self.deps, user, points, "reward")
        if self.balance[user] < points:
            assert isinstance(err, InsufficientPoints), err
            return self._no_token()
        if active >= MAX_ACTIVE:
            assert isinstance(err, TooManyActiveTokens), err
            return self._no_token()
        assert err is None, err
        self.balance[user] -= points
        assert issued.balance == self.balance[user]
        assert issued.token.expires_at == self.now + timedelta(seconds=TTL)
        t = ModelToken(issued.token.id, issued.token.code, user, points,
                       issued.token.expires_at, "active")
        self.model[t.id] = t
        return t.id

    def _no_token(self) -> uuid.UUID:
        # A refused issue still yields an id, one the database never saw: later rules
        # on it must answer "not found".
        return uuid.uuid4()

    @rule(token_id=tokens, m=st.integers(0, 1), wrong_code=st.booleans())
    def redeem(self, token_id: uuid.UUID, m: int, wrong_code: bool) -> None:
        t = self.model.get(token_id)
        code = f"nope-{token_id}" if (t is None or wrong_code) else t.code
        got, err = self._call(services.redeem, self.deps, code, self.merchants[m])
        t = self._by_code(code)
        if t is None:
            assert isinstance(err, TokenNotFound), err
            return
        if t.state == "active" and self.now < t.expires_at:
            assert err is None, err
            assert got.status == "redeemed" and got.merchant_id == self.merchants[m]
            t.state = "redeemed"
        elif t.state == "redeemed":
            assert isinstance(err, TokenAlreadyRedeemed), err
        elif t.state == "active":  # past expiry: refunded right here
            assert isinstance(err, TokenExpired), err
            assert err.details == {"points_restored": t.points, "reason": "expired"}
        else:
            assert isinstance(err, TokenExpired), err
            assert err.details == {"points_restored": t.points, "reason": t.state}
        self._restore_due(t.owner)  # validation sweeps the owner's expired tokens

    @rule(token_id=tokens, u=st.integers(0, 2), as_owner=st.booleans())
    def cancel(self, token_id: uuid.UUID, u: int, as_owner: bool) -> None:
        t = self.model.get(token_id)
        user = t.owner if (t is not None and as_owner) else self.users[u]
        got, err = self._call(services.cancel, self.deps, user, token_id)
        if t is None or t.owner != user:
            assert isinstance(err, TokenNotFound), err
        elif t.state == "active" and self.now < t.expires_at:
            assert err is None, err
            t.state = "cancelled"
            self.balance[user] += t.points
            assert (got.points_restored, got.balance) == (t.points, self.balance[user])
        elif t.state == "redeemed":
            assert isinstance(err, TokenAlreadyRedeemed), err
        elif t.state == "active":  # due: refunded as expired, and the answer says so
            assert isinstance(err, TokenExpired), err
            assert err.details == {"points_restored": t.points, "reason": "expired"}
            t.state = "expired"
            self.balance[user] += t.points
        else:
            assert isinstance(err, TokenExpired), err
            assert err.details == {"points_restored": t.points, "reason": t.state}

    @rule(token_id=tokens, times=st.integers(1, 2))
    def expire(self, token_id: uuid.UUID, times: int) -> None:
        for _ in range(times):
            outcome = services.expire(self.deps, token_id)
            t = self.model.get(token_id)
            if t is not None and self._due(t):
                assert outcome.restored is not None and outcome.restored.points == t.points
                t.state = "expired"
                self.balance[t.owner] += t.points
                assert outcome.restored.balance == self.balance[t.owner]
            elif t is not None and t.state == "active":  # early: the timer must wait
                assert outcome.restored is None
                assert outcome.not_due_until == t.expires_at
                assert outcome.as_of == self.now
            else:  # redeemed, restored, or never existed: nothing to do
                assert outcome == services.ExpireOutcome(None)

    @rule(u=st.integers(0, 2), dry_run=st.booleans())
    def sweep_one_user(self, u: int, dry_run: bool) -> None:
        user = self.users[u]
        got = services.sweep(self.deps, user_id=user, dry_run=dry_run)
        due = {t.id for t in self.model.values() if self._due(t) and t.owner == user}
        assert {r.token_id for r in got} == due
        if not dry_run:
            assert self._restore_due(user) == due

    @rule()
    def sweep_everyone(self) -> None:
        # Other tests' tokens may be restored too: only ours are compared.
        got = {r.token_id for r in sweep_all(self.deps) if r.user_id in self.users}
        assert got == self._restore_due(None)

    @rule(u=st.integers(0, 2))
    def status(self, u: int) -> None:
        user = self.users[u]
        self._restore_due(user)
        got = services.status(self.deps, user)
        assert got.balance == self.balance[user]
        mine = [t for t in self.model.values() if t.owner == user]
        assert {t.id for t in got.active} == {t.id for t in mine if t.state == "active"}
        assert [t.expires_at for t in got.active] == sorted(t.expires_at for t in got.active)

    @rule(token_id=tokens, u=st.integers(0, 2), as_owner=st.booleans())
    def get_token(self, token_id: uuid.UUID, u: int, as_owner: bool) -> None:
        t = self.model.get(token_id)
        user = t.owner if (t is not None and as_owner) else self.users[u]
        got, err = self._call(services.get_token, self.deps, user, token_id)
        if t is None or t.owner != user:
            assert isinstance(err, TokenNotFound), err
        elif t.state == "active" and self.now < t.expires_at:
            assert err is None and got.expires_in == int((t.expires_at - self.now).total_seconds())
        elif t.state == "redeemed":
            assert err is None and got.status == "redeemed" and got.expires_in == 0
        else:  # due (not yet refunded: a read changes nothing) or restored
            assert isinstance(err, TokenExpired), err
            reason = "expired" if t.state == "active" else t.state
            assert err.details == {"points_restored": t.points, "reason": reason}

    @rule(seconds=st.sampled_from([0.000001, 60, 179.999999, 180, 400]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.now = self.clock.current

    @rule(offset_us=st.sampled_from([-1, 0, 1]))
    def advance_to_the_next_expiry(self, offset_us: int) -> None:
        """Land right on a boundary: the instant an active token expires, or 1 µs either
        side, where redeem (now < expires_at) and expire (expires_at <= now) trade places."""
        upcoming = [t.expires_at for t in self.model.values()
                    if t.state == "active" and t.expires_at + timedelta(microseconds=offset_us)
                    > self.now]
        if upcoming:
            target = min(upcoming) + timedelta(microseconds=offset_us)
            self.clock.advance((target - self.now).total_seconds())
            self.now = self.clock.current
            assert self.now == target

    # Invariants ------------------------------------------------------------------------
    @invariant()
    def books_balance_and_match_the_model(self) -> None:
        books = assert_books_balance(self.deps.session_factory, self.users)
        for user in self.users:
            got = books[user].balance if user in books else 0
            assert got == self.balance[user], (user, got, self.balance[user])
        with self.deps.session_factory() as s:
            live = dict(s.execute(
                text("SELECT id, status FROM exchange_tokens WHERE user_id = ANY(:u)"),
                {"u": self.users},
            ).all())
            refunded = dict(s.execute(
                text("SELECT token_id, reason FROM ledger WHERE kind = 'refund'"
                     " AND user_id = ANY(:u)"),
                {"u": self.users},
            ).all())
        for t in self.model.values():
            if t.state in ("active", "redeemed"):
                assert live.get(t.id) == t.state and t.id not in refunded, t
            else:
                assert t.id not in live and refunded.get(t.id) == t.state, t


@pytest.mark.timeout(120)
def test_the_books_balance_after_any_sequence_of_operations(container):
    LedgerMachine.base_deps = container.deps
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
