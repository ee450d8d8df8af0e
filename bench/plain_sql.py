"""The baselines in plain SQL (psycopg2, no ORM, no framework): what PostgreSQL itself
allows on this machine for the same work, measured in the same run."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.environment import BenchEnv
from schemas.events import SCHEMA_VERSION
from shared.codes import new_code
from shared.messaging.names import H_REQUEST_ID
from shared.services.issue import ISSUE_CALL_SQL as CALL_SQL

# The API's issue transaction (the function issue_token, migration 0003), statement by
# statement, as a plain-SQL client sends it: lock the account, count the user's active
# tokens (and look for expired ones to restore first), then the conditional debit and the
# three inserts, and COMMIT. The same rows, locks, checks and indexes as the API's; only the
# client differs. The client makes the function's decisions (limit, sweep, balance) itself.
# Lock and count are two statements: the count must see every token committed before the
# lock, and one statement's snapshot is taken before it waits for the lock.
ISSUE_SQL = (
    "SELECT balance FROM accounts WHERE user_id = %(user)s FOR UPDATE",
    "SELECT count(*) FILTER (WHERE expires_at > now()),"
    " coalesce(bool_or(expires_at <= now()), false)"
    " FROM exchange_tokens WHERE user_id = %(user)s AND status = 'active'",
    # The conditional debit: atomic and overdraft-safe under READ COMMITTED.
    "UPDATE accounts SET balance = balance - %(points)s, updated_at = now()"
    " WHERE user_id = %(user)s AND balance >= %(points)s RETURNING balance",
    "INSERT INTO exchange_tokens"
    " (id, code, user_id, points, reward, status, created_at, expires_at)"
    " VALUES (%(id)s, %(code)s, %(user)s, %(points)s, NULL, 'active', now(),"
    " now() + make_interval(secs => %(ttl)s))",
    "INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)"
    " VALUES (%(user)s, -%(points)s, 'debit', 'token issued', %(id)s, %(code)s, now())",
    "INSERT INTO outbox (event_id, event_type, payload, headers)"
    " VALUES (%(event_id)s, 'TokenIssued', %(payload)s, %(headers)s)",
)
LOCK, COUNT, DEBIT, *INSERTS = ISSUE_SQL

# A smaller transaction, reported beside the API's figure: the conditional debit and the
# three inserts, without the account lock and the count that the active-token limit and
# the refund-before-issue need. It shows what those two cost; older results in
# docs/bench.md were measured against it. Its rows carry the event's headers and payload
# as the API writes them.
DEBIT_AND_INSERTS_SQL = (DEBIT, *INSERTS)


@dataclass(frozen=True)
class Limits:
    """The service's settings a transaction applies: TOKEN_TTL_SECONDS, MAX_ACTIVE_TOKENS."""

    ttl_s: int = 180
    max_active: int = 10  # the service's defaults


RFC3339 = "%Y-%m-%dT%H:%M:%S.%fZ"  # as pydantic writes the events, and issue_token


class BaselineRefused(RuntimeError):
    """The baseline's user could not be issued a token (at the limit, holding an expired
    token, or short of points): the benchmark's limits or seeding are wrong. Raised, so a
    cheaper refusal is never counted as work."""


def _headers() -> str:
    """The event's headers as an API request writes them: its (generated) request id."""
    return json.dumps({H_REQUEST_ID: uuid.uuid4().hex})


def _params(user: str, ttl_s: int) -> dict[str, Any]:
    token_id = str(uuid.uuid4())
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    payload = json.dumps({
        "event_id": event_id, "schema_version": SCHEMA_VERSION,
        "occurred_at": now.strftime(RFC3339), "token_id": token_id, "user_id": user,
        "points": 1, "type": "TokenIssued",
        "expires_at": (now + timedelta(seconds=ttl_s)).strftime(RFC3339)})
    return {"points": 1, "user": user, "id": token_id, "code": new_code(), "ttl": ttl_s,
            "event_id": event_id, "payload": payload,
            "headers": _headers()}


def _issue_once(cur: Any, user: str, limits: Limits) -> None:
    """The API's transaction (ISSUE_SQL), with its checks made by the client."""
    params = _params(user, limits.ttl_s)
    cur.execute(LOCK, params)
    account = cur.fetchone()
    cur.execute(COUNT, params)
    active, expired = cur.fetchone()
    if account is None or account[0] < params["points"] or expired or active >= limits.max_active:
        cur.connection.rollback()
        raise BaselineRefused(f"{user}: balance {account}, {active} active, expired {expired}")
    cur.execute(DEBIT, params)
    if cur.fetchone() is None:
        cur.connection.rollback()
        raise BaselineRefused(f"{user}: debit refused")
    for statement in INSERTS:
        cur.execute(statement, params)
    cur.connection.commit()


def _call_once(cur: Any, user: str, limits: Limits) -> None:
    """The API's own server-side call (issue_token), from plain psycopg2 in autocommit:
    what the API sends PostgreSQL for an issue, without HTTP, Flask, or the service. The
    function writes the event's payload itself."""
    cur.execute(CALL_SQL, {
        "user_id": user, "points": 1, "reward": None, "token_id": str(uuid.uuid4()),
        "code": new_code(), "event_id": str(uuid.uuid4()), "ttl_seconds": limits.ttl_s,
        "max_active": limits.max_active, "headers": _headers(),
        "schema_version": SCHEMA_VERSION, "now": None, "swept": False})
    outcome = cur.fetchone()[0]
    if outcome != "issued":
        raise BaselineRefused(f"{user}: {outcome}")


def _debit_and_insert_once(cur: Any, user: str, limits: Limits) -> None:
    """The smaller transaction (DEBIT_AND_INSERTS_SQL): no lock, no count."""
    params = _params(user, limits.ttl_s)
    for statement in DEBIT_AND_INSERTS_SQL:
        cur.execute(statement, params)
    cur.connection.commit()


def _threads(env: BenchEnv, connections: int, body: Callable[[int, Any], int],
             autocommit: bool = False) -> int:
    """Run ``body(index, cursor)`` on ``connections`` connections at once; total of counts."""
    counts = [0] * connections
    errors: list[BaseException] = []

    def run(i: int) -> None:
        conn = env.connect(autocommit=autocommit)
        try:
            with conn.cursor() as cur:
                counts[i] = body(i, cur)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts)


@dataclass(frozen=True)
class Transaction:
    run: Callable[[Any, str, Limits], None]
    autocommit: bool  # each statement its own transaction: only for a one-statement one


TRANSACTIONS = {
    "statements": Transaction(_issue_once, False),  # the API's transaction, one by one
    "call": Transaction(_call_once, True),  # the API's own issue_token call
    "smaller": Transaction(_debit_and_insert_once, False),  # debit and inserts only
}


class IssueLoad:
    """Issue transactions (one of TRANSACTIONS) from ``connections`` connections, each on
    its own users, in turn. Each phase goes on from the user after the last one served, so
    tokens spread evenly. The API's transaction refuses a user holding ``max_active``
    active tokens, or an expired one (BaselineRefused, never counted): the benchmark runs
    both sides with ``limits`` that no run reaches."""

    def __init__(self, users: list[str], kind: str, limits: Limits, connections: int = 4):
        self._mine = [users[i::connections] for i in range(connections)]
        self._next = [0] * connections
        self._transaction = TRANSACTIONS[kind]
        self._limits = limits

    def rate(self, env: BenchEnv, duration_s: float, warmup_s: float = 1.0) -> float:
        """Transactions per second over ``duration_s``, after ``warmup_s`` not counted."""
        once, limits = self._transaction.run, self._limits

        def body(i: int, cur: Any) -> int:
            mine, n = self._mine[i], self._next[i]
            counted_from = None
            warm_until = time.monotonic() + warmup_s
            stop = warm_until + duration_s
            while (now := time.monotonic()) < stop:
                if counted_from is None and now >= warm_until:
                    counted_from = n
                once(cur, mine[n % len(mine)], limits)
                n += 1
            self._next[i] = n
            return n - (counted_from if counted_from is not None else n)

        autocommit = self._transaction.autocommit
        return _threads(env, len(self._mine), body, autocommit=autocommit) / duration_s


REFUND_SQL = (
    "DELETE FROM exchange_tokens WHERE id = %(id)s AND status = 'active'"
    " AND expires_at <= now() RETURNING user_id, points, code",
    "INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)"
    " VALUES (%(user)s, %(points)s, 'refund', 'expired', %(id)s, %(code)s, now())",
    "UPDATE accounts SET balance = balance + %(points)s, updated_at = now()"
    " WHERE user_id = %(user)s",
)


def refund_rate(env: BenchEnv, token_ids: list[str], connections: int = 4) -> tuple[float, int]:
    """One refund per transaction (DELETE ... RETURNING, refund row, credit) over
    ``token_ids`` from ``connections`` connections; returns (refunds/s, refunds)."""

    def body(i: int, cur: Any) -> int:
        n = 0
        for token_id in token_ids[i::connections]:
            cur.execute(REFUND_SQL[0], {"id": token_id})
            row = cur.fetchone()
            if row is not None:
                params = {"id": token_id, "user": row[0], "points": row[1], "code": row[2]}
                cur.execute(REFUND_SQL[1], params)
                cur.execute(REFUND_SQL[2], params)
                n += 1
            cur.connection.commit()
        return n

    t0 = time.perf_counter()
    done = _threads(env, connections, body)
    return done / (time.perf_counter() - t0), done
