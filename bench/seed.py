"""Set-based seeding (generate_series, INSERT ... SELECT): a million rows in seconds, and
consistent with the schema's rules: every token has its debit in the ledger, every account
a credit that covers its tokens, so balance = sum of its ledger."""

from __future__ import annotations

from typing import Any

# TokenIssued as the outbox stores it (pydantic's JSON: RFC 3339 with a Z).
RFC3339 = """to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def seed_accounts(cur: Any, prefix: str, users: int, tokens: int, spare: int,
                  points: int = 1) -> None:
    """Accounts ``<prefix>-u<k>`` with ``spare`` points left after paying for their share
    of ``tokens`` tokens (token i belongs to user i mod users), and the matching credit."""
    cur.execute(
        """
        WITH a AS (
            INSERT INTO accounts (user_id, balance)
            SELECT %(prefix)s || '-u' || u, %(spare)s FROM generate_series(0, %(users)s - 1) u
            RETURNING user_id
        )
        INSERT INTO ledger (user_id, amount, kind, reason)
        SELECT %(prefix)s || '-u' || u,
               %(spare)s + %(points)s * (%(tokens)s / %(users)s
                                         + CASE WHEN u < %(tokens)s %% %(users)s THEN 1 ELSE 0 END),
               'credit', 'bench seed'
        FROM generate_series(0, %(users)s - 1) u
        """,
        {"prefix": prefix, "users": users, "tokens": tokens, "spare": spare, "points": points},
    )


def seed_tokens(cur: Any, prefix: str, users: int, tokens: int, *, expires_sql: str,
                redeemed_sql: str = "false", points: int = 1, outbox: bool = False,
                remember_expiry: bool = False, offset: int = 0, label: str = "") -> None:
    """``tokens`` tokens with their debit rows. ``expires_sql`` is an SQL expression of
    ``i`` (the token's index), and so is ``redeemed_sql``, true for redeemed tokens
    (``%`` written ``%%``).
    ``outbox`` writes their TokenIssued events as the issue service does;
    ``remember_expiry`` keeps (token_id, expires_at) in ``bench_expiry`` so lateness can
    be measured after the token row is deleted by its refund."""
    redeemed = f"({redeemed_sql})"
    sql = f"""
        WITH t AS (
            INSERT INTO exchange_tokens
                (id, code, user_id, points, status, created_at, expires_at, redeemed_at, merchant_id)
            SELECT gen_random_uuid(), %(prefix)s || '-c' || i, %(prefix)s || '-u' || (i %% %(users)s),
                   %(points)s,
                   CASE WHEN {redeemed} THEN 'redeemed' ELSE 'active' END,
                   now(), {expires_sql},
                   CASE WHEN {redeemed} THEN now() END,
                   CASE WHEN {redeemed} THEN 'bench-merchant' END
            FROM generate_series(%(offset)s, %(offset)s + %(tokens)s - 1) i
            RETURNING id, code, user_id, points, created_at, expires_at
        ), debits AS (
            INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)
            SELECT user_id, -points, 'debit', 'token issued', id, code, created_at FROM t
        ), remembered AS (
            INSERT INTO bench_expiry (token_id, expires_at, label)
            SELECT id, expires_at, %(label)s FROM t WHERE %(remember)s
        )
        INSERT INTO outbox (event_id, event_type, payload)
        SELECT e.event_id, 'TokenIssued', jsonb_build_object(
            'event_id', e.event_id, 'type', 'TokenIssued', 'schema_version', 1,
            'occurred_at', {RFC3339.format(col="e.created_at")},
            'token_id', e.id, 'user_id', e.user_id, 'points', e.points,
            'expires_at', {RFC3339.format(col="e.expires_at")})
        FROM (SELECT gen_random_uuid() AS event_id, t.* FROM t) e
        WHERE %(outbox)s
    """
    cur.execute(sql, {"prefix": prefix, "users": users, "tokens": tokens, "points": points,
                      "outbox": outbox, "remember": remember_expiry,
                      "offset": offset, "label": label})


def create_bench_tables(cur: Any) -> None:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS bench_expiry"
        " (token_id uuid PRIMARY KEY, expires_at timestamptz NOT NULL, label text NOT NULL)"
    )


def seed_outbox(cur: Any, count: int, event_type: str = "TokenCancelled") -> None:
    """``count`` unsent events (of a type only the audit queue receives)."""
    cur.execute(
        f"""
        INSERT INTO outbox (event_id, event_type, payload)
        SELECT e.event_id, %(type)s, jsonb_build_object(
            'event_id', e.event_id, 'type', %(type)s, 'schema_version', 1,
            'occurred_at', {RFC3339.format(col="now()")},
            'token_id', gen_random_uuid(), 'user_id', 'bench-u' || e.i, 'points', 1)
        FROM (SELECT gen_random_uuid() AS event_id, i
              FROM generate_series(0, %(count)s - 1) i) e
        """,
        {"count": count, "type": event_type},
    )


def check_books(cur: Any) -> list[str]:
    """Users whose balance differs from the sum of their ledger (should be none)."""
    cur.execute(
        """
        SELECT a.user_id FROM accounts a
        LEFT JOIN (SELECT user_id, sum(amount) s FROM ledger GROUP BY user_id) l USING (user_id)
        WHERE a.balance <> coalesce(l.s, 0) LIMIT 10
        """
    )
    return [r[0] for r in cur.fetchall()]
