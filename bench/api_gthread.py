"""Figure 1, one more row: the same API under gunicorn's gthread worker (``WEB_WORKER=
gthread``), the server before waitress became the default, against the same plain-SQL
baseline in alternating phases. Both servers are reported so the choice stays measured."""

from __future__ import annotations

from pathlib import Path

from bench import httpload, plain_sql
from bench.environment import BenchEnv
from bench.processes import cpu_seconds, free_port, running, wait_for_port
from bench.report import Row, ratio_of
from bench.sizes import Sizes


def gthread_row(api: Path, env: BenchEnv, sizes: Sizes, per_connection: list[list[bytes]],
                baseline: plain_sql.IssueLoad, baseline_name: str, ratio_goal: float,
                figure: str, limits: dict[str, object], warmup_s: float) -> Row:
    port = free_port()
    phase_s = sizes.duration_s / sizes.rounds
    conns = sizes.http_connections
    request_for = per_connection.__getitem__
    with running("api-gthread", [str(api), "api"],
                 env.child_env(port=port, web_worker="gthread", **limits)) as proc:
        wait_for_port(proc, port)
        httpload.wait_ready(port)
        at = httpload.one_pass(port, conns, request_for).positions
        parts, rates, cpu_s, sent = [], [], 0.0, 0
        for k in range(sizes.rounds):
            for side in (("api", "sql") if k % 2 == 0 else ("sql", "api")):
                if side == "sql":
                    rates.append(baseline.rate(env, phase_s, warmup_s=warmup_s))
                    continue
                cpu0 = cpu_seconds(proc.pid)
                part = httpload.closed_loop(port, conns, request_for, phase_s,
                                            warmup_s=warmup_s, begin_at=at)
                cpu_s += cpu_seconds(proc.pid) - cpu0
                sent += sum(part.positions) - sum(at)
                parts.append(part)
                at = part.positions
    peak = httpload.LoadResult.merged(parts)
    baseline_rate = sum(rates) / len(rates)
    ratio = ratio_of(peak.rate, baseline_rate)
    clean = peak.ok == sum(peak.statuses.values()) and not peak.errors
    return Row(figure, "201s/s at peak, gthread worker", peak.rate, "/s",
               baseline=baseline_name, baseline_value=baseline_rate, ratio=ratio,
               goal=None, details={
                   "server": "exchange-tokens api, WEB_WORKER=gthread (gunicorn's threads),"
                             " default WEB_CONCURRENCY and WEB_THREADS",
                   "statuses": {str(k): v for k, v in peak.statuses.items()},
                   "errors": peak.errors, "clean": clean,
                   "server_cpu_ms_per_request": round(cpu_s * 1000 / max(1, sent), 2),
                   "round_ratios": [None if r is None else round(r, 3) for r in
                                    map(ratio_of, [p.rate for p in parts], rates)],
                   "note": f"reported only; the goal (>= {ratio_goal}x) is the default"
                           " server's"})
