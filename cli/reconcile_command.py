"""``reconcile [--fix] [--json] [--grace SECONDS]``: prove the books balance."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.actor import actor_option, log_action, resolve_actor
from cli.common import outages_as_errors, settings_or_exit, table
from shared.bootstrap import bootstrap
from shared.services.reconcile import (
    DEFAULT_GRACE_SECONDS,
    Problem,
    Report,
    reconcile_and_fix,
)
from shared.services.reconcile import (
    reconcile as check_books,
)
from shared.settings import OpsSettings


class NothingChecked(click.ClickException):
    exit_code = 2  # 1 means "the books have problems"


def register(group: click.Group) -> None:
    group.add_command(reconcile)


@click.command()
@click.option("--fix", is_flag=True,
              help="First restore expired active tokens, as the sweep would; nothing else.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--grace", type=click.FloatRange(min=0), default=DEFAULT_GRACE_SECONDS,
              show_default=True, metavar="SECONDS",
              help="How long past its expiry an active token may wait for its timer.")
@actor_option
def reconcile(fix: bool, as_json: bool, grace: float, actor: str | None) -> None:
    """Check the books: each balance equals its ledger, every point is in a balance, an
    active or redeemed token, and every token's debit and refund are consistent.

    Exit code 0 when clean, 1 with a report of each problem (account, token, what is
    wrong) when not, 2 when the database cannot be reached (nothing checked). Read-only
    unless --fix. Safe while the system runs."""
    settings = settings_or_exit(OpsSettings)
    actor = resolve_actor(actor, settings, mutating=fix)
    container = bootstrap(settings)
    try:
        # Not "problems found": a cron job or an alert must tell broken books from an
        # outage, so neither a traceback nor exit 1.
        with outages_as_errors(settings, NothingChecked, "nothing was checked"):
            report = (reconcile_and_fix if fix else check_books)(container.deps, grace)
    finally:
        container.close()
    if fix:
        log_action("reconcile --fix", actor, restored=len(report.fixed),
                   points=sum(r.points for r in report.fixed))
    click.echo(json.dumps(as_dict(report, fix)) if as_json else as_text(report, fix))
    if not report.clean:
        raise SystemExit(1)


def as_dict(report: Report, fix: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "clean": report.clean,
        "checked_at": report.checked_at.isoformat(),
        "grace_seconds": report.grace_seconds,
        "accounts": report.accounts,
        "tokens": report.tokens,
        "ledger_rows": report.ledger_rows,
        "elapsed_ms": round(report.elapsed_ms, 1),
        "truncated": report.truncated,
        "problems": [
            {"kind": p.kind, "user_id": p.user_id,
             "token_id": str(p.token_id) if p.token_id else None, "details": p.details}
            for p in report.problems
        ],
    }
    if fix:
        out["fixed"] = [
            {"token_id": str(r.token_id), "user_id": r.user_id, "points": r.points}
            for r in report.fixed
        ]
        out["left_alone"] = report.left_alone
    return out


def _details(p: Problem) -> str:
    return " ".join(f"{k}={v}" for k, v in p.details.items())


def as_text(report: Report, fix: bool) -> str:
    lines = []
    if fix:
        total = sum(r.points for r in report.fixed)
        lines.append(f"fix: restored {len(report.fixed)} expired token(s), {total} point(s)")
        if report.left_alone:
            lines.append("fix: left alone (the account has other problems too): "
                         + ", ".join(report.left_alone))
    if report.problems:
        lines.append(table(
            ["problem", "user_id", "token_id", "details"],
            [[p.kind, p.user_id or "", str(p.token_id or ""), _details(p)]
             for p in report.problems],
        ))
    verdict = "clean" if report.clean else f"{len(report.problems)} problem(s)"
    if report.truncated:
        verdict += " (list truncated)"
    lines.append(
        f"checked {report.accounts} account(s), {report.tokens} token(s), "
        f"{report.ledger_rows} ledger row(s) in {report.elapsed_ms:.0f} ms "
        f"(grace {report.grace_seconds:g} s): {verdict}"
    )
    return "\n".join(lines)
