"""Figure 6: does issue and redeem latency stay flat as the tables grow? Timed through the
services (shared.services.issue / redeem, one transaction each, as the API calls them),
with ``cost_small`` and then ``cost_large`` token and ledger rows in the tables."""

from __future__ import annotations

import time

from bench import seed
from bench.context import Context
from bench.environment import BenchEnv
from bench.report import Row, ratio_of
from bench.sizes import Sizes
from bench.stats import summary_ms
from shared.bootstrap import bootstrap
from shared.services import issue, redeem

FIGURE = "6 cost curve"
GOAL = 1.2
TOKENS_PER_USER = 10


def _grow_to(env: BenchEnv, prefix: str, rows: int) -> None:
    """Add ``rows`` tokens (9 in 10 redeemed, the rest active for a day) with their debit
    rows and the accounts' credits, then ANALYZE so the planner knows the new sizes."""
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            users = max(1, rows // TOKENS_PER_USER)
            seed.seed_accounts(cur, prefix, users, rows, spare=100)
            seed.seed_tokens(cur, prefix, users, rows, redeemed_sql="i %% 10 <> 0",
                             expires_sql="now() + interval '1 day'")
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE exchange_tokens")
            cur.execute("VACUUM ANALYZE ledger")
            cur.execute("VACUUM ANALYZE accounts")
    finally:
        conn.close()


def _measure(env: BenchEnv, prefix: str, samples: int) -> tuple[dict[str, float], dict[str, float]]:
    """Time ``samples`` issues (fresh users, so per-user state is alike at both sizes), then
    the redeem of each token issued."""
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            seed.seed_accounts(cur, prefix, samples, 0, spare=1000)
        conn.commit()
    finally:
        conn.close()
    container = bootstrap(env.settings, pool_size=2)
    try:
        deps = container.deps
        # Warm the pool, the statement caches and the indexes' hot pages, both paths.
        for k in range(min(50, samples)):
            redeem(deps, issue(deps, f"{prefix}-u{k}", 1).token.code, "bench-merchant")
        issue_times, codes = [], []
        for k in range(samples):
            t0 = time.perf_counter()
            issued = issue(deps, f"{prefix}-u{k}", 1)
            issue_times.append(time.perf_counter() - t0)
            codes.append(issued.token.code)
        redeem_times = []
        for code in codes:
            t0 = time.perf_counter()
            redeem(deps, code, "bench-merchant")
            redeem_times.append(time.perf_counter() - t0)
    finally:
        container.close()
    return summary_ms(issue_times), summary_ms(redeem_times)


def _rows_in_tables(env: BenchEnv) -> tuple[int, int]:
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM exchange_tokens), (SELECT count(*) FROM ledger)")
            tokens, ledger = cur.fetchone()
    finally:
        conn.close()
    return tokens, ledger


def run(env: BenchEnv, sizes: Sizes, ctx: Context) -> list[Row]:
    _grow_to(env, "cc-small", sizes.cost_small)
    small_rows = _rows_in_tables(env)
    small = _measure(env, "cc-m1", sizes.cost_samples)
    _grow_to(env, "cc-large", sizes.cost_large - sizes.cost_small)
    large_rows = _rows_in_tables(env)
    large = _measure(env, "cc-m2", sizes.cost_samples)
    rows = []
    for name, s, big in (("issue", small[0], large[0]), ("redeem", small[1], large[1])):
        for pct in ("p50", "p99"):
            ratio = ratio_of(big[pct], s[pct])
            rows.append(Row(
                FIGURE, f"{name} {pct} latency via services, {large_rows[0]:,} tokens",
                big[pct], "ms", baseline=f"same, {small_rows[0]:,} tokens",
                baseline_value=s[pct], ratio=ratio, goal=f"<= {GOAL}x",
                passed=ratio is not None and ratio <= GOAL,
                details={"small_tables": {"tokens": small_rows[0], "ledger": small_rows[1]},
                         "large_tables": {"tokens": large_rows[0], "ledger": large_rows[1]},
                         "samples": sizes.cost_samples, "small": s, "large": big,
                         "path": "shared.services.issue / redeem (one transaction each)"},
            ))
    return rows
