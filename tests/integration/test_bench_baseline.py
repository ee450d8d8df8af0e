"""The API's throughput goal is a ratio to "the same database transaction run as plain SQL"
(bench/plain_sql.py). These check that the baseline really is that transaction: the rows
it writes are the rows the API's issue writes, and it refuses where the API refuses, so
it is never measured doing less (or more) than the API does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from bench import plain_sql
from shared import services
from shared.bootstrap import Container
from shared.errors import TooManyActiveTokens
from shared.logs import bound
from shared.services.deps import Deps


@pytest.fixture
def cursor(container: Container) -> Iterator[Any]:
    conn = container.engine.raw_connection()
    try:
        cur = conn.cursor()
        yield cur
        cur.close()
    finally:
        conn.close()


def _written(deps: Deps, user: str) -> dict[str, Any]:
    """What an issue left for ``user``, without the values that differ by nature (ids,
    codes, instants): the shape of each row, and how the instants relate."""
    with deps.session_factory() as s:
        token = s.execute(text(
            "SELECT points, reward, status, redeemed_at, merchant_id,"
            " expires_at - created_at AS lifetime, id, code"
            " FROM exchange_tokens WHERE user_id = :u"), {"u": user}).mappings().one()
        debit = s.execute(text(
            "SELECT amount, kind, reason, token_id, token_code FROM ledger"
            " WHERE user_id = :u AND kind = 'debit'"), {"u": user}).mappings().one()
        event = s.execute(text(
            "SELECT event_type, payload, headers, published_at FROM outbox"
            " WHERE payload->>'user_id' = :u"), {"u": user}).mappings().one()
        balance = s.execute(text("SELECT balance FROM accounts WHERE user_id = :u"),
                            {"u": user}).scalar_one()
    assert (debit["token_id"], debit["token_code"]) == (token["id"], token["code"])
    assert event["payload"]["token_id"] == str(token["id"])
    return {
        "token": {k: v for k, v in token.items() if k not in ("id", "code")},
        "debit": {k: debit[k] for k in ("amount", "kind", "reason")},
        "event_type": event["event_type"],
        "payload_fields": sorted(event["payload"]),
        "payload_points": event["payload"]["points"],
        "header_names": sorted(event["headers"]),
        "published": event["published_at"] is not None,
        "balance": balance,
    }


def test_the_baseline_writes_what_the_api_issue_writes(deps, cursor, user):
    # Given two users with the same balance
    by_api, by_baseline = f"{user}-api", f"{user}-sql"
    for u in (by_api, by_baseline):
        services.credit(deps, u, 10)

    # When one is issued a point by the API's path (a request's, with its request id) and
    # the other by the plain-SQL baseline
    with bound(request_id="req-1"):
        services.issue(deps, by_api, 1)
    plain_sql._issue_once(cursor, by_baseline)

    # Then both wrote the same rows: token, debit, TokenIssued with its headers, balance
    assert _written(deps, by_baseline) == _written(deps, by_api)


def test_the_baseline_refuses_where_the_api_does(deps, cursor, user):
    # Given a user holding the service's limit of active tokens
    services.credit(deps, user, 100)
    for _ in range(plain_sql.MAX_ACTIVE):
        services.issue(deps, user, 1)
    assert deps.max_active_tokens == plain_sql.MAX_ACTIVE  # the default limit, both sides

    # When both try once more, then both refuse, and the baseline says so (never a
    # cheaper refusal counted as a transaction)
    with pytest.raises(TooManyActiveTokens):
        services.issue(deps, user, 1)
    with pytest.raises(plain_sql.BaselineRefused):
        plain_sql._issue_once(cursor, user)
    with deps.session_factory() as s:
        assert s.execute(text("SELECT balance FROM accounts WHERE user_id = :u"),
                         {"u": user}).scalar_one() == 100 - plain_sql.MAX_ACTIVE
