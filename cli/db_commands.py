"""``migrate`` and ``cleanup``."""

from __future__ import annotations

import json

import click

from cli.actor import actor_option, log_action, resolve_actor
from cli.common import outages_as_errors, settings_or_exit, table
from shared.bootstrap import bootstrap
from shared.messaging.topology import declare_topology
from shared.persistence import migrate as migrations
from shared.services.sweep import sweep_all
from shared.settings import OpsSettings


def register(group: click.Group) -> None:
    group.add_command(migrate)
    group.add_command(cleanup)


@click.command()
@click.option("--no-broker", is_flag=True, help="Only the database schema.")
def migrate(no_broker: bool) -> None:
    """Bring the schema up to date (creating the database if missing) and declare the
    broker topology. Both are idempotent."""
    settings = settings_or_exit()
    with outages_as_errors(settings):
        if migrations.ensure_database(settings.sqlalchemy_url):
            click.echo(f"created database {migrations.redact(settings.database_url)}")
        migrations.upgrade(settings.sqlalchemy_url)
        click.echo("schema up to date")
        if not no_broker:
            declare_topology(settings)
            click.echo(f"broker topology declared (namespace {settings.broker_namespace})")


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would be restored; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@actor_option
def cleanup(dry_run: bool, as_json: bool, actor: str | None) -> None:
    """Restore and delete every expired token now. Safe while workers run, in several
    copies at once: each token is restored once."""
    settings = settings_or_exit(OpsSettings)
    actor = resolve_actor(actor, settings, mutating=not dry_run)
    container = bootstrap(settings)
    try:
        with outages_as_errors(settings):
            restored = sweep_all(container.deps, dry_run=dry_run)
    finally:
        container.close()
    total = sum(r.points for r in restored)
    if not dry_run:
        log_action("cleanup", actor, tokens=len(restored), points=total)
    if as_json:
        click.echo(json.dumps({
            "dry_run": dry_run,
            "tokens": [{"token_id": str(r.token_id), "user_id": r.user_id, "points": r.points,
                        "expires_at": r.expires_at.isoformat() if r.expires_at else None}
                       for r in restored],
            "count": len(restored),
            "total_points": total,
        }))
        return
    verb = "would restore" if dry_run else "restored"
    rows = [[str(r.token_id), r.user_id, str(r.points),
             r.expires_at.isoformat() if r.expires_at else ""] for r in restored]
    if rows:
        click.echo(table(["token_id", "user_id", "points", "expired_at"], rows))
    click.echo(f"{verb} {len(restored)} token(s), {total} point(s) in total"
               + (" (dry run: nothing changed)" if dry_run else ""))
