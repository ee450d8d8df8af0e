"""``python -m chaos`` (``make chaos``): the full run; ``--short`` for the short form."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from chaos import cluster, run
from chaos.report import render


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short form make test runs")
    parser.add_argument("--minutes", type=float, help="length of the load, faults included")
    parser.add_argument("--rate", type=float, help="tokens issued per second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    missing = cluster.missing_prerequisite()
    if missing:
        print(f"chaos: cannot run here: {missing}", file=sys.stderr)
        return 2
    plan = run.SHORT if args.short else run.Plan()
    changes = {k: v for k, v in (("minutes", args.minutes), ("rate", args.rate)) if v}
    work_dir = Path(tempfile.mkdtemp(prefix="exchange-tokens-chaos-"))
    report = run.run(dataclasses.replace(plan, **changes), work_dir=work_dir)
    print(render(report))
    if report.ok:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        print(f"the service's logs are kept in {work_dir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
