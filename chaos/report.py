"""The chaos run's report, as text: one block per fault, then the final books."""

from __future__ import annotations

from chaos.books import Verdict
from chaos.run import Report, percentile


def _rate(errors: tuple[int, int]) -> str:
    failed, total = errors
    return f"{failed}/{total} ({100 * failed / total:.1f} %)" if total else "no requests"


def _late(values: list[float]) -> str:
    if not values:
        return "none expired"
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(values):.2f} s (n={len(values)})"


def _verdict(v: Verdict | None) -> str:
    if v is None:
        return "not checked"
    r, x = v.refunds, v.exchange_requests
    line = (f"refunds ok {r.get('ok', 0)} / lost {r.get('lost', 0)} / duplicated "
            f"{r.get('duplicated', 0)} / pending {r.get('pending', 0)}; exchange requests ok "
            f"{x.get('ok', 0)} / lost {x.get('lost', 0)} / duplicated {x.get('duplicated', 0)}"
            f" / pending {x.get('pending', 0)}")
    return line + ("" if v.ok else "\n      PROBLEMS: " + "; ".join(v.problems))


def render(report: Report) -> str:
    plan = report.plan
    achieved = report.issued / (plan.minutes * 60)
    lines = [f"chaos run: {plan.minutes:g} min at {plan.rate:g} issues/s asked, TTL {plan.ttl_s} s,"
             f" {report.issued} tokens issued with a 201 ({achieved:.0f}/s achieved)"]
    for phase in report.phases:
        recovered = "not within 120 s" if phase.recovered_s is None else f"{phase.recovered_s:.0f} s"
        lines += [
            f"- {phase.fault}: {phase.injected}; {phase.healed}",
            f"    API errors during {_rate(phase.errors_during)}, up to 30 s after "
            f"{_rate(phase.errors_after)}; recovered in {recovered}",
            f"    expiry lateness during {_late(phase.lateness_during)}; after "
            f"{_late(phase.lateness_after)}",
            f"    books: {_verdict(phase.verdict)}",
        ]
    lines.append(f"final books: {_verdict(report.final)}")
    lines.append(f"answers: {dict(sorted(report.statuses.items()))}; "
                 f"restarts: {report.restarts}")
    lines.append("RESULT: " + ("OK, nothing lost or doubled" if report.ok else "FAILED"))
    return "\n".join(lines)
