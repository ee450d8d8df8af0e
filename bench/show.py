"""``python -m bench.show [bench/results.json]``: print a results file's table again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.report import Row, render_table


def machine_line(machine: dict, elapsed_s: float | None = None, quick: bool = False) -> str:
    line = (f"{machine['cores']} cores, {machine['cpu_model']}, {machine.get('memory_mb')} MB;"
            f" PostgreSQL {machine['postgres']}, RabbitMQ {machine['rabbitmq']},"
            f" Python {machine['python']}; {machine['date']}")
    if elapsed_s is not None:
        line += f"; {elapsed_s:.0f} s{' (--quick)' if quick else ''}"
    return line


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "bench/results.json")
    doc = json.loads(path.read_text())
    rows = [Row(**f) for f in doc["figures"]]
    print(render_table(rows))
    print()
    print(machine_line(doc["machine"], doc.get("elapsed_seconds"),
                       doc.get("arguments", {}).get("quick", False)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
