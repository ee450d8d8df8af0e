"""Large, consistent books generated in SQL, to measure the reconciler at scale.

Per user: one credit of 1,000 points and six tokens of 10: two redeemed (with their
exchange requests), one active, three restored (debit and refund, token deleted). That
is 10 ledger rows, 3 live tokens and 2 exchange requests per user, balance 970.

    python -m tests.integration.reconcile.generated_books --users 100000

builds them (1,000,000 ledger rows) in a throwaway database beside DATABASE_URL's, times
``reconcile`` on them, and drops the database.
"""

from __future__ import annotations

import argparse
import os
import time

from sqlalchemy import Connection, text

LEDGER_ROWS_PER_USER = 10

STATEMENTS = (
    "INSERT INTO accounts (user_id, balance) SELECT 'gen-' || g, 970"
    " FROM generate_series(1, :users) g",
    "CREATE TEMP TABLE gen_tokens ON COMMIT DROP AS"
    " SELECT 'gen-' || g AS user_id, k, gen_random_uuid() AS id,"
    " md5(g || '-' || k || random()::text) AS code"
    " FROM generate_series(1, :users) g, generate_series(1, 6) k",
    "INSERT INTO ledger (user_id, amount, kind, reason, created_at)"
    " SELECT 'gen-' || g, 1000, 'credit', 'generated', now() - interval '2 days'"
    " FROM generate_series(1, :users) g",
    "INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)"
    " SELECT user_id, -10, 'debit', 'token issued', id, code, now() - interval '1 day'"
    " FROM gen_tokens",
    "INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)"
    " SELECT user_id, 10, 'refund', 'expired', id, code, now() - interval '1 day'"
    " FROM gen_tokens WHERE k >= 4",
    "INSERT INTO exchange_tokens (id, code, user_id, points, status, created_at, expires_at,"
    " redeemed_at, merchant_id)"
    " SELECT id, code, user_id, 10, CASE WHEN k <= 2 THEN 'redeemed' ELSE 'active' END,"
    " now() - interval '1 minute', now() + interval '1 hour',"
    " CASE WHEN k <= 2 THEN now() - interval '30 seconds' END,"
    " CASE WHEN k <= 2 THEN 'shop' END"
    " FROM gen_tokens WHERE k <= 3",
    "INSERT INTO exchange_requests (id, token_id, user_id, merchant_id, points, created_at)"
    " SELECT gen_random_uuid(), id, user_id, 'shop', 10, now() FROM gen_tokens WHERE k <= 2",
)


def generate_books(conn: Connection, users: int) -> None:
    """Append consistent books for ``users`` generated users, in the caller's transaction."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    for statement in STATEMENTS:
        conn.execute(text(statement), {"users": users})


def main() -> None:  # pragma: no cover - a measuring tool, run by hand
    from shared.bootstrap import bootstrap
    from shared.services.reconcile import reconcile
    from shared.settings import Settings, normalise_database_url
    from tests.integration.foundation.scratch import scratch_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = normalise_database_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    with scratch_database(server, "million") as url:
        container = bootstrap(Settings(database_url=url, app_env="development"))
        try:
            started = time.perf_counter()
            with container.engine.begin() as conn:
                generate_books(conn, args.users)
            with container.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            print(f"generated {args.users * LEDGER_ROWS_PER_USER:,} ledger rows in "
                  f"{time.perf_counter() - started:.1f} s")
            for run in range(1, args.runs + 1):
                report = reconcile(container.deps)
                print(f"run {run}: {report.ledger_rows:,} ledger rows, {report.tokens:,} tokens,"
                      f" {report.accounts:,} accounts: {report.elapsed_ms / 1000:.2f} s,"
                      f" {'clean' if report.clean else f'{len(report.problems)} problems'}")
        finally:
            container.close()


if __name__ == "__main__":
    main()
