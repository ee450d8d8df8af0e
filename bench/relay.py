"""Figure 4: the outbox relay (``exchange-tokens worker --role relay``) publishing with
confirms and marking rows sent, vs a raw pipelined publish-with-confirms loop to a quorum
queue, both measured in the same run."""

from __future__ import annotations

import time

from bench import raw_publish, seed
from bench.context import Context
from bench.environment import BenchEnv
from bench.processes import ProcessFailed, free_port, log_tail, running
from bench.report import Row, ratio_of
from bench.sizes import Sizes
from bench.workers import worker_argv

FIGURE = "4 outbox relay"
GOAL = 0.5


def _unsent(cur: object) -> int:
    cur.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")  # type: ignore[attr-defined]
    return int(cur.fetchone()[0])  # type: ignore[attr-defined]


def _wait_drained(env: BenchEnv, proc: object, timeout_s: float, poll_s: float = 0.02) -> None:
    conn = env.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            deadline = time.monotonic() + timeout_s
            while _unsent(cur):
                if proc.poll() is not None:  # type: ignore[attr-defined]
                    raise ProcessFailed(f"relay exited:\n{log_tail(proc)}")  # type: ignore[arg-type]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{_unsent(cur)} outbox rows still unsent after {timeout_s} s")
                time.sleep(poll_s)
    finally:
        conn.close()


def run(env: BenchEnv, sizes: Sizes, ctx: Context) -> list[Row]:
    argv = worker_argv("relay")
    n = sizes.relay_rows
    conn = env.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            # A body as the relay sends it (TokenCancelled: only the audit queue gets it).
            seed.seed_outbox(cur, 1)
            cur.execute("SELECT payload::text FROM outbox LIMIT 1")
            body = cur.fetchone()[0].encode()
            cur.execute("DELETE FROM outbox")
    finally:
        conn.close()
    raw_rate = raw_publish.publish_rate(env, sizes.publish_messages, body)

    with running("relay", [*argv, "--metrics-port", str(free_port())], env.child_env()) as proc:
        conn = env.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                seed.seed_outbox(cur, 1)  # a canary: the relay is connected once it is sent
            _wait_drained(env, proc, 60)
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                seed.seed_outbox(cur, n)
                cur.execute("COMMIT")
                committed = time.perf_counter()  # the rows are visible to the relay from here
            # Timed by the client, commit to "no row left unsent" (polled every 5 ms): a
            # row's published_at is its marking transaction's start, before that batch's
            # confirms, so it would flatter the relay by one batch.
            _wait_drained(env, proc, 120, poll_s=0.005)
            elapsed = time.perf_counter() - committed
        finally:
            conn.close()
    rate = n / elapsed
    ratio = ratio_of(rate, raw_rate)
    return [Row(
        FIGURE, "rows/s published (confirmed) and marked sent", rate, "/s",
        baseline="raw pipelined pika publish+confirm", baseline_value=raw_rate, ratio=ratio,
        goal=f">= {GOAL}x", passed=ratio is not None and ratio >= GOAL,
        details={"rows": n, "raw_messages": sizes.publish_messages, "raw_window": 1000,
                 "body_bytes": len(body),
                 "timing": "commit of the rows -> none left unsent (client clock)"},
    )]
