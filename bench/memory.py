"""Figure 5: resident memory (VmRSS from /proc) of the API (gunicorn master and workers,
summed) after its load test, and of one worker after the one-worker lateness run."""

from __future__ import annotations

from bench.context import Context, NotMeasured
from bench.environment import BenchEnv
from bench.report import Row, missing
from bench.sizes import Sizes

FIGURE = "5 memory"
WORKER_GOAL_MB = 150.0


def run(env: BenchEnv, sizes: Sizes, ctx: Context) -> list[Row]:
    if not ctx.memory_mb and not ctx.memory_notes:
        raise NotMeasured("needs the api and lateness benchmarks in the same run")
    rows = []
    if "api" in ctx.memory_mb:
        rows.append(Row(FIGURE, "API RSS (gunicorn master + workers) after load",
                        ctx.memory_mb["api"], "MB"))
    else:
        rows.append(missing(FIGURE, "API RSS", "MB", "the api benchmark did not run"))
    if "worker" in ctx.memory_mb:
        mb = ctx.memory_mb["worker"]
        rows.append(Row(FIGURE, "worker RSS after the 1-worker lateness run", mb, "MB",
                        goal=f"<= {WORKER_GOAL_MB:.0f} MB", passed=mb <= WORKER_GOAL_MB))
    else:
        rows.append(missing(FIGURE, "worker RSS", "MB", "the lateness benchmark did not run",
                            goal=f"<= {WORKER_GOAL_MB:.0f} MB"))
    return rows
