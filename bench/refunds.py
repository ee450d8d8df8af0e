"""Figure 2: refund throughput of one worker's expire path (``exchange-tokens worker
--role expire``: due TokenExpired messages consumed in batches, refunded in one
transaction per batch) vs one refund per transaction in plain SQL from 4 connections, on
the same number of expired tokens, in the same run.

The worker's queue is filled first (the timers have all come due), then the worker starts;
its rate is timed on the database's clock, from the start of its first refund transaction
(the refunds' ``created_at``) to the moment every token is seen refunded.
"""

from __future__ import annotations

import json
import time
import uuid

from bench import plain_sql, raw_publish, seed
from bench.context import Context
from bench.environment import BenchEnv
from bench.processes import ProcessFailed, free_port, log_tail, running
from bench.report import Row, ratio_of
from bench.sizes import Sizes
from bench.workers import worker_argv
from shared.messaging.names import Names

FIGURE = "2 refunds"
GOAL = 2.0


def _expired_tokens(env: BenchEnv, prefix: str, count: int) -> list[tuple]:
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            users = max(1, count // 10)
            seed.seed_accounts(cur, prefix, users, count, spare=0)
            seed.seed_tokens(cur, prefix, users, count,
                             expires_sql="now() - interval '1 second'")
            cur.execute(
                "SELECT id::text, user_id, points,"
                f" {seed.RFC3339.format(col='expires_at')} FROM exchange_tokens"
                " WHERE code LIKE %s", (prefix + "-c%",))
            rows = cur.fetchall()
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE exchange_tokens; ANALYZE ledger; ANALYZE accounts")
    finally:
        conn.close()
    return rows


def _timer_body(token: tuple) -> bytes:
    """The TokenExpired timer a worker scheduled at issue time, now due."""
    token_id, user_id, points, expires_at = token
    return json.dumps({
        "event_id": str(uuid.uuid4()), "type": "TokenExpired", "schema_version": 1,
        "occurred_at": expires_at, "token_id": token_id, "user_id": user_id,
        "points": points, "expires_at": expires_at, "restored": False,
    }).encode()


def _worker_rate(env: BenchEnv, tokens: list[tuple]) -> tuple[float, dict]:
    queue = Names(env.settings.broker_namespace).consumer_queue("expire")
    raw_publish.publish_all(env, queue, [_timer_body(t) for t in tokens], declare=False,
                            message_type="TokenExpired")
    argv = [*worker_argv("expire"), "--metrics-port", str(free_port())]
    conn = env.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM ledger")
            before = cur.fetchone()[0]  # our refunds are the ledger rows after this one
            with running("expire", argv, env.child_env()) as proc:
                deadline = time.monotonic() + 120
                while True:
                    cur.execute("SELECT count(*), clock_timestamp() FROM ledger"
                                " WHERE id > %s AND kind = 'refund'", (before,))
                    done, now = cur.fetchone()
                    if done >= len(tokens):
                        break
                    if proc.poll() is not None:
                        raise ProcessFailed(f"worker exited:\n{log_tail(proc)}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{done}/{len(tokens)} refunded after 120 s")
                    time.sleep(0.01)
            cur.execute("SELECT min(created_at), count(DISTINCT created_at) FROM ledger"
                        " WHERE id > %s AND kind = 'refund'", (before,))
            first, batches = cur.fetchone()
    finally:
        conn.close()
    # From the first batch's transaction start to the moment all were seen refunded (the
    # database's clock both times; polled every 10 ms, so a little against the worker).
    rate = len(tokens) / (now - first).total_seconds()
    return rate, {"batches": batches}


def run(env: BenchEnv, sizes: Sizes, ctx: Context) -> list[Row]:
    n = sizes.refund_tokens
    baseline = _expired_tokens(env, "rf-base", n)
    base_rate, base_done = plain_sql.refund_rate(env, [t[0] for t in baseline], connections=4)
    rate, batches = _worker_rate(env, _expired_tokens(env, "rf-ours", n))
    ratio = ratio_of(rate, base_rate)
    return [Row(
        FIGURE, "refunds/s, one worker (--role expire), batched", rate, "/s",
        baseline="1 refund per tx, plain SQL, 4 conns", baseline_value=base_rate, ratio=ratio,
        goal=f">= {GOAL}x", passed=ratio is not None and ratio >= GOAL,
        details={"tokens": n, "baseline_refunded": base_done, **batches,
                 "path": "exchange-tokens worker --role expire, queue filled with due timers"},
    )]
