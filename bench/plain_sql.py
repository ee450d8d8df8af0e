"""The baselines in plain SQL (psycopg2, no ORM, no framework): what PostgreSQL itself
allows on this machine for the same work, measured in the same run."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.environment import BenchEnv

ISSUE_SQL = (
    # The conditional debit: atomic and overdraft-safe under READ COMMITTED.
    "UPDATE accounts SET balance = balance - %(points)s, updated_at = now()"
    " WHERE user_id = %(user)s AND balance >= %(points)s RETURNING balance",
    "INSERT INTO exchange_tokens (id, code, user_id, points, status, created_at, expires_at)"
    " VALUES (%(id)s, %(code)s, %(user)s, %(points)s, 'active', now(),"
    " now() + interval '180 seconds')",
    "INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)"
    " VALUES (%(user)s, -%(points)s, 'debit', 'token issued', %(id)s, %(code)s, now())",
    "INSERT INTO outbox (event_id, event_type, payload)"
    " VALUES (%(event_id)s, 'TokenIssued', %(payload)s)",
)


def _issue_once(cur: Any, user: str) -> None:
    token_id = str(uuid.uuid4())
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    payload = json.dumps({"event_id": event_id, "type": "TokenIssued", "schema_version": 1,
                          "occurred_at": now, "token_id": token_id, "user_id": user,
                          "points": 1, "expires_at": now})
    params = {"points": 1, "user": user, "id": token_id, "code": secrets.token_urlsafe(20),
              "event_id": event_id, "payload": payload}
    for statement in ISSUE_SQL:
        cur.execute(statement, params)
    cur.connection.commit()


def _threads(env: BenchEnv, connections: int, body: Callable[[int, Any], int]) -> int:
    """Run ``body(index, cursor)`` on ``connections`` connections at once; total of counts."""
    counts = [0] * connections
    errors: list[BaseException] = []

    def run(i: int) -> None:
        conn = env.connect()
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


def issue_rate(env: BenchEnv, users: list[str], duration_s: float, connections: int = 4,
               warmup_s: float = 1.0) -> float:
    """Issue transactions per second (debit, token, ledger, outbox) from ``connections``
    connections for ``duration_s``, each connection on its own users."""

    def body(i: int, cur: Any) -> int:
        mine = users[i::connections]
        n = 0
        warm_until = time.monotonic() + warmup_s
        while time.monotonic() < warm_until:
            _issue_once(cur, mine[n % len(mine)])
            n += 1
        n = 0
        stop = time.monotonic() + duration_s
        while time.monotonic() < stop:
            _issue_once(cur, mine[n % len(mine)])
            n += 1
        return n

    return _threads(env, connections, body) / duration_s


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
