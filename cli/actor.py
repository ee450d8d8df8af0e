"""Who is acting, for the audit trail of the ops commands.

In order: ``--actor``, the ``EXCHANGE_TOKENS_ACTOR`` environment variable, then the OS
account the process runs as (its password-database entry, not ``$USER``, which a
container, cron or ``sudo`` leave unset or stale). A process whose uid has no entry (a
container run with ``--user 12345``) has no actor at all: in production a command that
changes something is then refused, since its audit row would name nobody; a read or a
dry run goes ahead as ``unknown``.
"""

from __future__ import annotations

import logging
import os
import pwd

import click

from shared.settings import AppEnv, Settings

log = logging.getLogger("exchange_tokens.cli")

ACTOR_ENV = "EXCHANGE_TOKENS_ACTOR"
UNKNOWN = "unknown"

actor_option = click.option(
    "--actor", envvar=ACTOR_ENV, default=None, show_envvar=True,
    help="Who is acting, for the audit trail. Default: the OS account.",
)


def os_account() -> str | None:
    try:
        return pwd.getpwuid(os.getuid()).pw_name or None
    except KeyError:
        return None


def resolve_actor(given: str | None, settings: Settings, *, mutating: bool) -> str:
    """The actor to record; a one-line refusal when a change would be made by nobody."""
    named = (given or "").strip() or os_account()
    if named:
        return named
    if mutating and settings.app_env is AppEnv.production:
        raise click.ClickException(
            f"no actor for the audit trail: pass --actor NAME or set {ACTOR_ENV} "
            f"(uid {os.getuid()} has no account); nothing changed")
    return UNKNOWN


def log_action(command: str, actor: str, **fields: object) -> None:
    """One log line naming who ran a command that changed something, and what it did:
    the audit of the commands that have no audit table (cleanup, reconcile --fix)."""
    log.info("ops command run", extra={"command": command, "actor": actor, **fields})
