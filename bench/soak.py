"""Figure 7: the soak. The whole life of tokens (issue through the API, relay, schedule,
expire, refund; a share redeemed and cancelled) sustained at a fixed rate for
``sizes.soak_s`` (10 minutes in the full run), with:

* the expiry lateness (refund time minus ``expires_at``) p99 against the 500 ms goal,
* the rate beside the database's own ceiling for the same issue (the API's issue_token
  call in plain SQL from 4 connections, measured in the same run): a ratio,
* the API's and the workers' resident memory at the start and at the end (no growth).

The rate is ``BENCH_SOAK_RATE`` tokens a second (default 200): the highest rate this
machine holds is found by raising it until the lateness goal fails (docs/bench.md).
The API and the workers are the service's own processes (chaos/service.py), on the run's
throwaway database and broker namespace.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import plain_sql
from bench.api_issue import LIMITS, _seed_users
from bench.context import Context
from bench.environment import BenchEnv
from bench.processes import free_port, rss_mb
from bench.report import Row
from bench.sizes import Sizes
from chaos.load import Load
from chaos.run import percentile
from chaos.service import Service
from shared.settings import normalise_database_url

FIGURE = "7 soak"
LATENESS_GOAL_MS = 500.0
TTL_S = 5


def _rss(service: Service, prefix: str | tuple[str, ...]) -> float:
    return sum(rss_mb(p.popen.pid) for name, p in service.processes.items()
               if name.startswith(prefix) and p.popen and p.popen.poll() is None)


def _lateness_ms(engine: object, expires_at: dict[str, str]) -> list[float]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        refunded = dict(conn.execute(text(
            "SELECT token_id::text, created_at FROM ledger"
            " WHERE kind = 'refund' AND reason = 'expired'")).all())
    out = []
    for token_id, expires in expires_at.items():
        at = refunded.get(token_id)
        if at is not None:
            due = datetime.fromisoformat(expires.replace("Z", "+00:00"))
            out.append((at - due).total_seconds() * 1000)
    return out


def run(env: BenchEnv, sizes: Sizes, ctx: Context) -> list[Row]:
    rate = float(os.environ.get("BENCH_SOAK_RATE", "20" if ctx.quick else "200"))
    ceiling = plain_sql.IssueLoad(_seed_users(env, "soak-sql", 64), "call", LIMITS).rate(
        env, sizes.duration_s, sizes.warmup_s)
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))  # the processes' logs
    service = Service.build(env.child_env(
        TOKEN_TTL_SECONDS=TTL_S, MAX_ACTIVE_TOKENS=100_000, REDEEM_FAILURES_PER_MINUTE=100_000,
        WORKER_METRICS_PORT=0, LOG_LEVEL="WARNING"), port, log_dir)
    engine = create_engine(normalise_database_url(env.database_url))
    service.start()
    try:
        load = Load(port, env.settings.jwt_secret or "", rate)
        load.credit_everyone()
        load.start()
        time.sleep(min(10.0, sizes.soak_s / 4))  # warm: pools, caches, first timers
        api_start, workers_start = _rss(service, "api"), _rss(service, ("worker", "relay"))
        started = time.time()
        time.sleep(sizes.soak_s)
        elapsed = time.time() - started
        api_end, workers_end = _rss(service, "api"), _rss(service, ("worker", "relay"))
        load.finish()
        time.sleep(TTL_S + 3)  # the last tokens' expiry
        with load.outcomes.lock:
            issued_in_window = len(load.outcomes.issued)
            expires = dict(load.outcomes.expires_at)
        failed, total = load.outcomes.error_rate(started, started + elapsed)
        lateness = _lateness_ms(engine, expires)
    finally:
        service.stop()
        engine.dispose()
    achieved = issued_in_window / (elapsed + min(10.0, sizes.soak_s / 4))
    p99 = percentile(lateness, 99)
    return [
        Row(FIGURE, f"tokens issued per second, whole life, {sizes.soak_s:.0f} s", achieved,
            "/s", baseline="issue_token in plain SQL, 4 connections", baseline_value=ceiling,
            ratio=achieved / ceiling if ceiling else None),
        Row(FIGURE, "expiry lateness p99 over the soak", p99, "ms",
            goal=f"<= {LATENESS_GOAL_MS:.0f} ms",
            passed=p99 is not None and p99 <= LATENESS_GOAL_MS),
        Row(FIGURE, "API requests failed (5xx or no answer) over the soak", failed, "requests",
            baseline="requests in all", baseline_value=total,
            ratio=failed / total if total else None),
        Row(FIGURE, "API RSS start -> end", api_end, "MB", baseline="at the start",
            baseline_value=api_start, ratio=api_end / api_start if api_start else None),
        Row(FIGURE, "workers' RSS (2 workers + relay) start -> end", workers_end, "MB",
            baseline="at the start", baseline_value=workers_start,
            ratio=workers_end / workers_start if workers_start else None),
    ]
