"""``python -m bench [--quick] [--tokens N] [--duration S] [--only NAME...] [--out PATH]``

Creates a throwaway database and broker namespace, runs each benchmark against real
PostgreSQL and RabbitMQ (starting the API and workers as subprocesses), prints one table,
writes the results as JSON, and removes everything it created, also on failure or Ctrl-C.
Exit status: 0 when every figure was measured or marked "not measured" with a reason; 1
when a benchmark failed. Goals are reported (PASS / FAIL), not enforced by the exit status.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import api_issue, cost_curve, lateness, memory, refunds, relay, soak
from bench.context import Context, NotMeasured
from bench.environment import BenchEnv, machine_info, reset, throwaway_world
from bench.report import Row, missing, render_table, write_json
from bench.show import machine_line
from bench.sizes import Sizes, sizes_for

Benchmark = Callable[[BenchEnv, Sizes, Context], list[Row]]

# In run order: the million-row cost curve last, so it slows nothing else.
BENCHMARKS: dict[str, tuple[str, Benchmark]] = {
    "api": (api_issue.FIGURE, api_issue.run),
    "refunds": (refunds.FIGURE, refunds.run),
    "relay": (relay.FIGURE, relay.run),
    "lateness": (lateness.FIGURE, lateness.run),
    "memory": (memory.FIGURE, memory.run),
    "soak": (soak.FIGURE, soak.run),
    "cost": (cost_curve.FIGURE, cost_curve.run),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="tiny sizes: the whole run in < 60 s")
    p.add_argument("--tokens", type=int, help="tokens expiring in the lateness benchmark")
    p.add_argument("--duration", type=float, help="seconds of each throughput phase")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                   help=f"run only these: {', '.join(BENCHMARKS)}")
    p.add_argument("--out", type=Path, default=Path("bench/results.json"))
    return p.parse_args(argv)


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"error: {type(exc).__name__}: {first}"[:200]


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops processes and drops the world.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sizes = sizes_for(args.quick, args.tokens, args.duration)
    chosen = args.only or list(BENCHMARKS)
    ctx = Context(quick=args.quick)
    rows: list[Row] = []
    failed = False
    started = time.monotonic()
    with throwaway_world() as env:
        machine = machine_info(env)
        world = {"database": env.database_name, "broker_namespace": env.settings.broker_namespace}
        for name in BENCHMARKS:
            if name not in chosen:
                continue
            figure, bench = BENCHMARKS[name]
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                if name != "memory":
                    reset(env)  # each benchmark starts from empty tables and queues
                rows.extend(bench(env, sizes, ctx))
            except NotMeasured as exc:
                rows.append(missing(figure, name, "", str(exc)))
            except Exception as exc:
                failed = True
                traceback.print_exc()
                rows.append(missing(figure, name, "", _one_line(exc)))
            print(f"[bench] {name} done in {time.monotonic() - t0:.1f} s", file=sys.stderr,
                  flush=True)
    elapsed = time.monotonic() - started
    print(render_table(rows))
    print()
    print(machine_line(machine, elapsed, args.quick))
    write_json(args.out, machine, {"quick": args.quick, "only": chosen, "sizes": vars(sizes)},
               rows, elapsed, world)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: processes stopped, database and broker namespace removed",
              file=sys.stderr)
        sys.exit(130)
