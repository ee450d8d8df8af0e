"""Figure 2: refund throughput of the worker's batched expire path vs one refund per
transaction in plain SQL, on the same number of expired tokens, in the same run."""

from __future__ import annotations

import time
import uuid

from bench import plain_sql, seed
from bench.context import Context
from bench.environment import BenchEnv
from bench.report import Row, ratio_of
from bench.sizes import Sizes
from shared.bootstrap import bootstrap
from shared.services.expire import expire_many

FIGURE = "2 refunds"
GOAL = 2.0
BATCH = 100  # as the expire consumer drains due messages


def _expired_tokens(env: BenchEnv, prefix: str, count: int) -> list[str]:
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            users = max(1, count // 10)
            seed.seed_accounts(cur, prefix, users, count, spare=0)
            seed.seed_tokens(cur, prefix, users, count,
                             expires_sql="now() - interval '1 second'")
            cur.execute("SELECT id::text FROM exchange_tokens WHERE code LIKE %s",
                        (prefix + "-c%",))
            ids = [r[0] for r in cur.fetchall()]
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE exchange_tokens; ANALYZE ledger; ANALYZE accounts")
    finally:
        conn.close()
    return ids


def run(env: BenchEnv, sizes: Sizes, ctx: Context) -> list[Row]:
    n = sizes.refund_tokens
    baseline_ids = _expired_tokens(env, "rf-base", n)
    base_rate, base_done = plain_sql.refund_rate(env, baseline_ids, connections=4)

    ours_ids = [uuid.UUID(i) for i in _expired_tokens(env, "rf-ours", n)]
    container = bootstrap(env.settings, pool_size=2)
    try:
        t0 = time.perf_counter()
        done = 0
        for k in range(0, len(ours_ids), BATCH):
            done += len(expire_many(container.deps, ours_ids[k:k + BATCH]))
        rate = done / (time.perf_counter() - t0)
    finally:
        container.close()
    ratio = ratio_of(rate, base_rate)
    return [Row(
        FIGURE, f"refunds/s, expire_many in batches of {BATCH}, 1 connection", rate, "/s",
        baseline="1 refund per tx, plain SQL, 4 conns", baseline_value=base_rate, ratio=ratio,
        goal=f">= {GOAL}x", passed=ratio is not None and ratio >= GOAL,
        details={"tokens": n, "refunded": done, "baseline_refunded": base_done,
                 "path": "shared.services.expire.expire_many"},
    )]
