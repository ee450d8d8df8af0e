"""Figure 3: expiry lateness, refund time minus ``expires_at``, read from the database.

Tokens are issued at a steady rate over ``expiry_window_s`` (written as the issue service
writes them: token, debit, TokenIssued in the outbox, in chunks every 100 ms) with a
lifetime equal to that window, so ``expiry_tokens`` tokens expire within the next window,
while the workers are still relaying and scheduling the later ones. Each token's
``expires_at`` is kept aside (the token row is deleted by its refund); lateness is the
refund ledger row's ``created_at`` minus it. Run with one worker, then with two.

Beside it, the original system's approach: a cleanup job every 60 s, simulated against the
database from the same tokens' ``expires_at``: for each of 60 phases of the job's schedule
(1 s apart), a token waits until the job's next run; the cost of the job itself is left
out, which only flatters it.
"""

from __future__ import annotations

import time

from bench import seed
from bench.context import Context
from bench.environment import BenchEnv
from bench.processes import ProcessFailed, free_port, log_tail, rss_mb, running
from bench.report import Row
from bench.workers import worker_argv
from shared.messaging.names import Names
from shared.messaging.topology import Topology

FIGURE = "3 expiry lateness"
P99_GOAL_MS = 500.0
MAX_GOAL_MS = 1000.0
CHUNK_S = 0.1


def _refunded(cur: object, label: str) -> int:
    cur.execute(  # type: ignore[attr-defined]
        "SELECT count(*) FROM bench_expiry b JOIN ledger l"
        " ON l.token_id = b.token_id AND l.kind = 'refund' WHERE b.label = %s", (label,))
    return int(cur.fetchone()[0])  # type: ignore[attr-defined]


def _issue_over_window(env: BenchEnv, label: str, tokens: int, window_s: float,
                       ttl_s: float) -> float:
    """Returns how long issuing really took (more than the window if the machine lagged)."""
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            users = max(1, tokens // 5)
            seed.seed_accounts(cur, label, users, tokens, spare=0)
            conn.commit()
            chunks = max(1, round(window_s / CHUNK_S))
            per_chunk = -(-tokens // chunks)
            start = time.monotonic()
            done = 0
            for k in range(chunks):
                time.sleep(max(0.0, start + k * CHUNK_S - time.monotonic()))
                count = min(per_chunk, tokens - done)
                if count <= 0:
                    break
                seed.seed_tokens(cur, label, users, count, offset=done, outbox=True,
                                 remember_expiry=True, label=label,
                                 expires_sql=f"now() + interval '{ttl_s} seconds'")
                conn.commit()
                done += count
            return time.monotonic() - start
    finally:
        conn.close()


def _wait_ready(env: BenchEnv, procs: list, label: str) -> None:
    """A canary token expiring in 1 s, refunded end to end: relay, scheduler, delay
    queues and expire consumer are all up."""
    conn = env.connect()
    try:
        with conn.cursor() as cur:
            seed.seed_accounts(cur, label, 1, 1, spare=0)
            seed.seed_tokens(cur, label, 1, 1, outbox=True, remember_expiry=True, label=label,
                             expires_sql="now() + interval '0.5 second'")
            conn.commit()
            deadline = time.monotonic() + 60
            while not _refunded(cur, label):
                conn.rollback()
                for p in procs:
                    if p.poll() is not None:
                        raise ProcessFailed(f"worker exited:\n{log_tail(p)}")
                if time.monotonic() > deadline:
                    raise TimeoutError("the canary token was not refunded within 60 s")
                time.sleep(0.1)
    finally:
        conn.close()


def _lateness_ms(cur: object, label: str) -> dict[str, float]:
    cur.execute(  # type: ignore[attr-defined]
        """
        SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY lat),
               percentile_disc(0.99) WITHIN GROUP (ORDER BY lat), max(lat), min(lat), count(*)
        FROM (SELECT extract(epoch FROM l.created_at - b.expires_at) * 1000 AS lat
              FROM bench_expiry b JOIN ledger l ON l.token_id = b.token_id AND l.kind = 'refund'
              WHERE b.label = %s) x
        """, (label,))
    p50, p99, mx, mn, n = cur.fetchone()  # type: ignore[attr-defined]
    # Lateness by second of the expiry window: a backlog shows as a rising series.
    cur.execute(  # type: ignore[attr-defined]
        """
        SELECT floor(extract(epoch FROM b.expires_at - min(b.expires_at) OVER ())) AS second,
               extract(epoch FROM l.created_at - b.expires_at) * 1000 AS lat
        FROM bench_expiry b JOIN ledger l ON l.token_id = b.token_id AND l.kind = 'refund'
        WHERE b.label = %s
        """, (label,))
    by_second: dict[int, list[float]] = {}
    for second, lat in cur.fetchall():  # type: ignore[attr-defined]
        by_second.setdefault(int(second), []).append(float(lat))
    series = {s: round(max(v), 1) for s, v in sorted(by_second.items())}
    return {"p50": float(p50), "p99": float(p99), "max": float(mx), "min": float(mn), "n": n,
            "max_ms_by_second": series}


def _cleanup_job_ms(cur: object, label: str) -> dict[str, float]:
    """Lateness if a job swept every 60 s: pooled over 60 phases of its schedule."""
    cur.execute(  # type: ignore[attr-defined]
        """
        SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY lat),
               percentile_disc(0.99) WITHIN GROUP (ORDER BY lat), max(lat)
        FROM (SELECT mod(mod(phase - extract(epoch FROM b.expires_at), 60) + 60, 60) * 1000
                     AS lat
              FROM bench_expiry b CROSS JOIN generate_series(0, 59) phase
              WHERE b.label = %s) x
        """, (label,))
    p50, p99, mx = cur.fetchone()  # type: ignore[attr-defined]
    return {"p50": float(p50), "p99": float(p99), "max": float(mx)}


def _one_run(env: BenchEnv, sizes: object, workers: int, ctx: Context) -> dict[str, float]:
    label = f"lt{workers}"
    n, window = sizes.expiry_tokens, sizes.expiry_window_s  # type: ignore[attr-defined]
    ttl = max(2.0, window)
    argv = worker_argv()
    child_env = env.child_env(token_ttl_seconds=int(ttl))
    # The workers' lifetime queue (named by their TOKEN_TTL_SECONDS, not the run's):
    # purged between benchmarks and removed at the end with the namespace.
    lifetime = Topology(Names(env.settings.broker_namespace), int(ttl)).lifetime_queue
    if lifetime not in env.extra_queues:
        env.extra_queues.append(lifetime)
    with _workers(argv, workers, child_env) as procs:
        _wait_ready(env, procs, f"{label}-canary")
        issued_over = _issue_over_window(env, label, n, window, ttl)
        conn = env.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                deadline = time.monotonic() + ttl + window + (20 if ctx.quick else 60)
                while _refunded(cur, label) < n and time.monotonic() < deadline:
                    for p in procs:
                        if p.poll() is not None:
                            raise ProcessFailed(f"worker exited:\n{log_tail(p)}")
                    time.sleep(0.2)
                result = _lateness_ms(cur, label)
                if workers == 1:
                    ctx.notes["cleanup_job"] = _cleanup_job_ms(cur, label)
        finally:
            conn.close()
        if workers == 1:
            ctx.memory_mb["worker"] = rss_mb(procs[0].pid)
    result["expected"] = n
    result["issued_over_s"] = round(issued_over, 2)
    return result


class _workers:
    """Start ``count`` workers, each with its own metrics port; stop them all on exit."""

    def __init__(self, argv: list[str], count: int, env: dict[str, str]) -> None:
        self.argv, self.count, self.env = argv, count, env
        self.contexts: list = []

    def __enter__(self) -> list:
        procs = []
        try:
            for k in range(self.count):
                cm = running(f"worker{k}", [*self.argv, "--metrics-port", str(free_port())],
                             self.env)
                procs.append(cm.__enter__())
                self.contexts.append(cm)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return procs

    def __exit__(self, *exc: object) -> None:
        while self.contexts:
            self.contexts.pop().__exit__(None, None, None)


def run(env: BenchEnv, sizes: object, ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for workers in (1, 2):
        r = _one_run(env, sizes, workers, ctx)
        job = ctx.notes.get("cleanup_job", {})
        complete = r["n"] == r["expected"]
        details = {"tokens": r["expected"], "restored": r["n"], "min_ms": r["min"],
                   "max_ms_by_second_of_window": r["max_ms_by_second"],
                   "window_s": sizes.expiry_window_s,  # type: ignore[attr-defined]
                   "issued_over_s": r["issued_over_s"],
                   "baseline": "cleanup job every 60 s, simulated from the same tokens'"
                               " expires_at over 60 phases (job cost left out)"}
        label = f"{workers} worker{'s' if workers > 1 else ''}"
        for pct, goal, limit in (("p50", None, None), ("p99", f"<= {P99_GOAL_MS:.0f} ms",
                                 P99_GOAL_MS), ("max", f"<= {MAX_GOAL_MS:.0f} ms", MAX_GOAL_MS)):
            base = job.get(pct)
            rows.append(Row(
                FIGURE, f"lateness {pct}, {label}, {r['expected']:,} tokens in "
                        f"{sizes.expiry_window_s:g} s",  # type: ignore[attr-defined]
                r[pct], "ms", baseline="cleanup job every 60 s (simulated)",
                baseline_value=base, ratio=(r[pct] / base) if base else None, goal=goal,
                passed=None if limit is None else (complete and r[pct] <= limit),
                details=details))
    return rows
