"""The results: one row per figure, printed as one table and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured figure beside its baseline.

    ``goal`` is a human-readable target ("≥ 0.5×", "≤ 500 ms") checked by ``passed``
    (None when the figure is only reported). ``not_measured`` carries the reason when a
    figure could not be measured: never a made-up number.
    """

    figure: str
    metric: str
    value: float | None
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    goal: str | None = None
    passed: bool | None = None
    not_measured: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def missing(figure: str, metric: str, unit: str, reason: str, goal: str | None = None) -> Row:
    return Row(figure, metric, None, unit, goal=goal, not_measured=reason)


def ratio_of(value: float, baseline: float) -> float | None:
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return None
    return value / baseline


def _num(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if unit == "x":
        return f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x"
    if abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.2f}"
    return f"{text} {unit}".strip()


def render_table(rows: list[Row]) -> str:
    headers = ["figure", "metric", "ours", "baseline", "baseline value", "ratio", "goal", "result"]
    lines: list[list[str]] = []
    for r in rows:
        if r.not_measured:
            result = f"not measured: {r.not_measured}"
        elif r.passed is None:
            result = "reported"
        else:
            result = "PASS" if r.passed else "FAIL"
        lines.append([
            r.figure, r.metric, _num(r.value, r.unit), r.baseline or "-",
            _num(r.baseline_value, r.unit), _num(r.ratio, "x"), r.goal or "-", result,
        ])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(x) for x in lines)])


def _clean(value: Any) -> Any:
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, machine: dict[str, Any], args: dict[str, Any], rows: list[Row],
               elapsed_s: float, world: dict[str, str]) -> None:
    document = {
        "machine": machine,
        "world": world,
        "arguments": args,
        "elapsed_seconds": round(elapsed_s, 1),
        "figures": [_clean(asdict(r)) for r in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
