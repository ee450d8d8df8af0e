"""The API's throughput goal is a ratio to "the same database transaction run as plain SQL"
(bench/plain_sql.py). These check that each baseline does the work its name says: the
API's transaction writes the rows the API's issue writes, takes the account's lock and
refuses where the API refuses (so it is never measured doing less); the smaller one
writes the same rows without the lock."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bench import plain_sql
from shared import services
from shared.bootstrap import Container
from shared.errors import TooManyActiveTokens
from shared.logs import bound
from shared.services.deps import Deps

DEFAULTS = plain_sql.Limits()  # the service's defaults: 180 s, 10 active tokens
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def cursors(container: Container) -> Iterator[Any]:
    """Cursors on connections of their own, as the benchmark's threads have."""
    opened = []

    def cursor(autocommit: bool = False) -> Any:
        conn = container.engine.raw_connection()
        conn.dbapi_connection.autocommit = autocommit
        opened.append(conn)
        return conn.cursor()

    yield cursor
    for conn in opened:
        conn.dbapi_connection.autocommit = False
        conn.close()


def _written(deps: Deps, user: str) -> dict[str, Any]:
    """What an issue left for ``user``, without the values that differ by nature (ids,
    codes, instants): the shape of each row, and how the instants relate."""
    with deps.session_factory() as s:
        token = s.execute(text(
            "SELECT points, reward, status, redeemed_at, merchant_id,"
            " expires_at - created_at AS lifetime, id, code, created_at, expires_at,"
            " xmin::text AS xid FROM exchange_tokens WHERE user_id = :u"),
            {"u": user}).mappings().one()
        debit = s.execute(text(
            "SELECT amount, kind, reason, token_id, token_code, xmin::text AS xid FROM ledger"
            " WHERE user_id = :u AND kind = 'debit'"), {"u": user}).mappings().one()
        event = s.execute(text(
            "SELECT event_type, payload, headers, published_at, xmin::text AS xid FROM outbox"
            " WHERE payload->>'user_id' = :u"), {"u": user}).mappings().one()
        balance, account_xid = s.execute(text(
            "SELECT balance, xmin::text FROM accounts WHERE user_id = :u"), {"u": user}).one()
    payload = event["payload"]
    assert (debit["token_id"], debit["token_code"]) == (token["id"], token["code"])
    assert payload["token_id"] == str(token["id"])
    # The event's instants written as the events are: RFC 3339 in UTC, microseconds, Z.
    for field in ("occurred_at", "expires_at"):
        assert RFC3339.fullmatch(payload[field]), payload
    instants = [datetime.strptime(payload[f], plain_sql.RFC3339)
                for f in ("occurred_at", "expires_at")]
    return {
        "token": {k: v for k, v in token.items()
                  if k not in ("id", "code", "created_at", "expires_at", "xid")},
        # the debit and the three rows in one transaction (one xid), as the API's
        "transactions": len({token["xid"], debit["xid"], event["xid"], account_xid}),
        "code_length": len(token["code"]),
        "debit": {k: debit[k] for k in ("amount", "kind", "reason")},
        "event_type": event["event_type"],
        "payload": {k: v for k, v in payload.items()
                    if k not in ("event_id", "token_id", "user_id", "occurred_at", "expires_at")},
        "payload_fields": sorted(payload),
        "payload_lifetime": instants[1] - instants[0],
        "headers": {name: len(value) for name, value in event["headers"].items()},
        "published": event["published_at"] is not None,
        "balance": balance,
    }


def _issue(cursors: Any, kind: str, user: str, limits: plain_sql.Limits = DEFAULTS) -> None:
    """One transaction of ``kind``, on a connection set up as the benchmark sets it up."""
    transaction = plain_sql.TRANSACTIONS[kind]
    transaction.run(cursors(autocommit=transaction.autocommit), user, limits)


@pytest.mark.parametrize("kind", ["statements", "call", "smaller"])
def test_each_baseline_writes_what_the_api_issue_writes(deps, cursors, user, kind):
    # Given two users with the same balance
    by_api, by_baseline = f"{user}-api", f"{user}-sql"
    for u in (by_api, by_baseline):
        services.credit(deps, u, 10)

    # When one is issued a point by the API's path (a request's, with a request id as the
    # API makes one) and the other by the baseline
    with bound(request_id=uuid.uuid4().hex):
        services.issue(deps, by_api, 1)
    _issue(cursors, kind, by_baseline)

    # Then both wrote the same rows: token, debit, TokenIssued with its headers, balance
    assert _written(deps, by_baseline) == _written(deps, by_api)
    assert _written(deps, by_api)["token"]["lifetime"] == timedelta(seconds=180)


@pytest.mark.parametrize("kind", ["statements", "call", "smaller"])
def test_each_baseline_applies_the_lifetime_it_is_given(deps, cursors, user, kind):
    # The benchmark runs both sides with a lifetime no run reaches (bench/api_issue.py)
    services.credit(deps, user, 10)
    _issue(cursors, kind, user, plain_sql.Limits(ttl_s=3600, max_active=100_000))
    written = _written(deps, user)
    assert written["token"]["lifetime"] == written["payload_lifetime"] == timedelta(hours=1)


@pytest.mark.parametrize("kind", ["statements", "call"])
def test_the_api_transaction_counts_after_taking_the_account_lock(deps, cursors, user, kind):
    # Given a user one token under the limit, and another issue of theirs in flight: it
    # holds the account's lock and has written the last token allowed, not yet committed
    services.credit(deps, user, 100)
    for _ in range(DEFAULTS.max_active - 1):
        services.issue(deps, user, 1)
    other = cursors()  # its debit holds the row's lock (FOR NO KEY UPDATE, as an UPDATE)
    other.execute("UPDATE accounts SET balance = balance - 1 WHERE user_id = %s", (user,))
    other.execute(
        "INSERT INTO exchange_tokens (id, code, user_id, points, status, created_at,"
        " expires_at) VALUES (%s, %s, %s, 1, 'active', now(), now() + interval '3 minutes')",
        (str(uuid.uuid4()), f"code-{uuid.uuid4().hex}", user))

    # When the baseline issues for that user meanwhile
    outcome: list[BaseException | None] = []

    def issue() -> None:
        try:
            _issue(cursors, kind, user)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcome.append(exc)

    worker = threading.Thread(target=issue, daemon=True)
    worker.start()

    # Then it waits for the lock, and once the other issue commits, its count sees that
    # token and it refuses, as the API's transaction does: the limit holds under
    # concurrent issues (a count taken before the lock, or under a lock an UPDATE does
    # not block, would have let an 11th through)
    worker.join(0.5)
    assert worker.is_alive() and not outcome
    other.connection.commit()
    worker.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], plain_sql.BaselineRefused), outcome


@pytest.mark.parametrize("kind", ["statements", "call"])
def test_the_api_transaction_refuses_where_the_api_does(deps, cursors, user, kind):
    # Given a user holding the service's limit of active tokens
    services.credit(deps, user, 100)
    for _ in range(DEFAULTS.max_active):
        services.issue(deps, user, 1)
    assert deps.max_active_tokens == DEFAULTS.max_active

    # When both try once more, then both refuse, and the baseline says so (never a
    # cheaper refusal counted as a transaction)
    with pytest.raises(TooManyActiveTokens):
        services.issue(deps, user, 1)
    with pytest.raises(plain_sql.BaselineRefused, match="10 active|too_many"):
        _issue(cursors, kind, user)
    with deps.session_factory() as s:
        assert s.execute(text("SELECT balance FROM accounts WHERE user_id = :u"),
                         {"u": user}).scalar_one() == 100 - DEFAULTS.max_active


@pytest.mark.parametrize("kind", ["statements", "call"])
def test_the_api_transaction_stops_at_an_expired_token(deps, cursors, user, kind):
    # Given a user with an active token past its expiry (the API would restore it first)
    services.credit(deps, user, 10)
    issued = services.issue(deps, user, 1)
    with deps.session_factory() as s:
        s.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second'"
                       " WHERE id = :t"), {"t": issued.token.id})
        s.commit()

    # When the baseline issues for that user, then it refuses (the benchmark runs with a
    # lifetime no run reaches, so this never passes for a measured transaction)
    with pytest.raises(plain_sql.BaselineRefused, match="expired True|sweep"):
        _issue(cursors, kind, user)
