"""``dlq``: the dead-letter console (list, show, replay, purge, history).

See docs/dead-letters.md for the runbook. Inspecting never consumes a delivery attempt nor
drops a message; replay and purge leave an audit row that ``dlq history`` lists.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import click
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker
from sqlalchemy.exc import OperationalError

from cli.actor import actor_option, resolve_actor
from cli.common import settings_or_exit, table
from shared.bootstrap import Container, bootstrap
from shared.messaging.dead_letter_queue import ParkingQueue
from shared.services import dead_letter_audit as audit
from shared.services import dead_letter_console as console
from shared.settings import OpsSettings, Settings

DEFAULT_LIST_LIMIT = 100


def register(group: click.Group) -> None:
    group.add_command(dlq)


@click.group()
def dlq() -> None:
    """Inspect, replay and purge dead-lettered events (the parking queue)."""


@contextmanager
def _parking(settings: Settings) -> Iterator[ParkingQueue]:
    opened = False
    try:
        with ParkingQueue.open(settings) as queue:
            opened = True
            yield queue
    except console.UnknownIds as exc:
        raise click.ClickException(
            f"unknown dead-letter id(s): {', '.join(exc.ids)} (see `dlq list`); nothing changed"
        ) from None
    except console.ReplayTooLong as exc:
        raise click.ClickException(
            f"{exc}: longer than the broker lets a message wait for its acknowledgement "
            f"(consumer_timeout, 30 min by default). Replay at most {exc.fits} at a time "
            f"(--all --limit {exc.fits}, or fewer --id) or raise --rate; nothing changed"
        ) from None
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        raise click.ClickException(
            f"{exc.reply_text}: is BROKER_NAMESPACE right ({settings.broker_namespace})? "
            "`exchange-tokens migrate` declares the topology"
        ) from None
    except AMQPConnectionError as exc:
        if opened:  # lost mid-command: what was done before it is in the audit trail
            raise click.ClickException(
                f"broker connection lost ({exc!r}); what was done before it is in "
                "`exchange-tokens dlq history`, the rest stays parked") from None
        raise click.ClickException(f"broker unreachable at {_redact(settings.amqp_url)} "
                                   f"({exc!r}); nothing changed") from None


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a closed terminal's SIGHUP too) as Ctrl-C: a replay or purge stopped that
    way still completes its audit row with what it did, instead of dying mid-write."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _database(settings: Settings) -> Iterator[Container]:
    container = bootstrap(settings, pool_size=1)
    try:
        yield container
    except OperationalError as exc:
        # The audit row is written before the broker is touched: if it could not be, nothing
        # changed; if it could not be completed, what was done is on stderr above.
        raise click.ClickException(
            f"database unavailable ({str(exc.orig).strip().splitlines()[0]}); the audit trail "
            "needs it: nothing was changed, unless an incomplete audit row is reported above"
        ) from None
    finally:
        container.close()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port or 5672}{parts.path}"


def _ids_or_all(ids: tuple[str, ...], more: tuple[str, ...], all_: bool) -> list[str] | None:
    """``--id A B C`` (the documented ``--id ID...``) as well as ``--id A --id B``: click
    gives an option one value, so the ids after the first come as arguments."""
    if more and not ids:
        raise click.UsageError("dead-letter ids go after --id: --id ID [ID]...")
    if bool(ids) == all_:
        raise click.UsageError("give either --id ID [ID]... or --all")
    return None if all_ else list(dict.fromkeys((*ids, *more)))


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.option("--group", "grouped", is_flag=True,
              help="Count failures by event type, exception type and reason.")
@click.option("--limit", default=DEFAULT_LIST_LIMIT, show_default=True, type=click.IntRange(1),
              help="Read at most this many (oldest first).")
def list_(as_json: bool, grouped: bool, limit: int) -> None:
    """Dead letters, oldest first. Reading puts every message back, in place."""
    settings = settings_or_exit(OpsSettings)
    with _parking(settings) as queue:
        depth = queue.depth()
        letters = queue.peek(limit)
    if grouped:
        groups = console.group_by_type(letters)
        if as_json:
            click.echo(json.dumps({"depth": depth, "read": len(letters), "groups": [
                {"type": t, "exception_type": e, "reason": r, "count": n}
                for t, e, r, n in groups]}))
            return
        click.echo(table(["count", "type", "exception_type", "reason"],
                         [[str(n), t, e, r] for t, e, r, n in groups])
                   if groups else "no dead letters")
    elif as_json:
        click.echo(json.dumps({"depth": depth, "read": len(letters),
                               "messages": [dl.summary() for dl in letters]}))
        return
    elif letters:
        click.echo(table(
            ["id", "type", "token", "attempts", "reason", "dead_lettered_at", "exception"],
            [[dl.id, dl.type or "?", dl.token_id or "-",
              "" if dl.attempts is None else str(dl.attempts), dl.reason or "?",
              dl.dead_lettered_at or "-", _short(dl.exception or "")] for dl in letters],
        ))
    else:
        click.echo("no dead letters")
    if depth > len(letters):
        click.echo(f"showing {len(letters)} of {depth} (use --limit)")


def _short(text: str, width: int = 60) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@dlq.command()
@click.argument("dead_letter_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def show(dead_letter_id: str, as_json: bool) -> None:
    """Everything about one dead letter: headers, body, attempts, exception and stack."""
    settings = settings_or_exit(OpsSettings)
    with _parking(settings) as queue:
        found = console.find(queue, dead_letter_id)
    if not found:
        raise click.ClickException(f"unknown dead-letter id: {dead_letter_id} (see `dlq list`)")
    if as_json:
        click.echo(json.dumps([dl.details() for dl in found], indent=2, default=str))
        return
    for dl in found:
        d = dl.details()
        for key in ("id", "message_id", "type", "token_id", "user_id", "reason", "attempts",
                    "replayed", "dead_lettered_at", "original_exchange",
                    "original_routing_key", "original_queue", "exception"):
            click.echo(f"{key + ':':22} {'' if d[key] is None else d[key]}")
        click.echo("headers:")
        click.echo(_indent(json.dumps(d["headers"], indent=2, sort_keys=True, default=str)))
        click.echo("body:" + (f"  ({d['parse_error']})" if d["parse_error"] else ""))
        body = d["body"]
        click.echo(_indent(json.dumps(body, indent=2) if isinstance(body, dict) else str(body)))
        click.echo("stack:")
        click.echo(_indent(d["stack"] or "(none)"))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _report(outcomes: list[console.Outcome], as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        click.echo(json.dumps({**extra, "messages": [o.as_json() for o in outcomes]}))
        return
    if outcomes:
        click.echo(table(["id", "type", "token", "outcome"],
                         [[o.letter.id, o.letter.type or "?", o.letter.token_id or "-",
                           o.outcome] for o in outcomes]))


@dlq.command()
@click.option("--id", "ids", multiple=True,
              help="Dead-letter ids from `dlq list`: --id A B, or --id A --id B.")
@click.option("--all", "all_", is_flag=True, help="Every dead letter present now.")
@click.argument("more_ids", nargs=-1, metavar="[ID]...")
@click.option("--dry-run", is_flag=True,
              help="Change nothing; say what each message would do against the database now.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="At most N replays per second.")
@click.option("--limit", type=click.IntRange(1),
              help="With --all: only the N oldest (work through a large queue in chunks).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@actor_option
def replay(ids: tuple[str, ...], all_: bool, more_ids: tuple[str, ...], dry_run: bool,
           rate: float | None, limit: int | None, as_json: bool, actor: str | None) -> None:
    """Republish dead letters to their original exchange and routing key.

    Each is acked (removed) only once the broker confirmed the republished copy; one that
    cannot be routed stays parked and is reported. Exit 1 if any replay failed.
    """
    chosen = _ids_or_all(ids, more_ids, all_)
    if limit is not None and chosen is not None:
        raise click.UsageError("--limit goes with --all")
    settings = settings_or_exit(OpsSettings)
    actor = resolve_actor(actor, settings, mutating=not dry_run)
    with _terminate_as_interrupt(), _database(settings) as container, \
            _parking(settings) as queue:
        outcomes = console.replay(container.deps, queue, chosen, actor=actor,
                                  dry_run=dry_run, rate=rate, limit=limit)
    failed = [] if dry_run else [o for o in outcomes if not o.ok]
    _report(outcomes, as_json, {"dry_run": dry_run,
                                "replayed": 0 if dry_run else len(outcomes) - len(failed),
                                "judged": len(outcomes), "failed": len(failed)})
    if not as_json:
        if dry_run:
            click.echo(f"dry run: {len(outcomes)} message(s) judged, nothing changed")
        else:
            click.echo(f"replayed {len(outcomes) - len(failed)} message(s)"
                       + (f", {len(failed)} left parked (see outcome)" if failed else ""))
    if failed:
        sys.exit(1)


def _confirm(question: str) -> None:
    """Ask; anything but yes, or no answer at all (stdin closed), purges nothing."""
    try:
        click.confirm(question, abort=True)
    except click.Abort:
        raise click.ClickException("not confirmed: nothing purged (--yes skips the "
                                   "question)") from None


@dlq.command()
@click.option("--id", "ids", multiple=True,
              help="Dead-letter ids from `dlq list`: --id A B, or --id A --id B.")
@click.option("--all", "all_", is_flag=True, help="Every dead letter present now.")
@click.argument("more_ids", nargs=-1, metavar="[ID]...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@actor_option
def purge(ids: tuple[str, ...], all_: bool, more_ids: tuple[str, ...], yes: bool,
          as_json: bool, actor: str | None) -> None:
    """Drop dead letters for good. Asks for confirmation unless --yes (on stdin when it is
    not a terminal: `echo y | ... purge` confirms; a closed stdin, as under cron, is a no)."""
    chosen = _ids_or_all(ids, more_ids, all_)
    settings = settings_or_exit(OpsSettings)
    actor = resolve_actor(actor, settings, mutating=True)
    missing_ok = False
    with _terminate_as_interrupt(), _database(settings) as container, \
            _parking(settings) as queue:
        if not yes:
            if chosen is None:
                # Confirm exactly what is shown: --all then purges these ids, not whatever
                # arrived while the prompt waited.
                chosen = [dl.id for dl in queue.peek()]
                missing_ok = True
                what = f"all {len(chosen)} dead letter(s) in {queue.queue}"
            else:
                what = f"{len(chosen)} dead letter(s): {', '.join(chosen)}"
            if not chosen:
                click.echo("no dead letters")
                return
            _confirm(f"Purge {what}? They cannot be recovered")
        outcomes = console.purge(container.deps, queue, chosen, actor=actor,
                                 missing_ok=missing_ok)
    _report(outcomes, as_json, {"purged": len(outcomes)})
    if not as_json:
        click.echo(f"purged {len(outcomes)} message(s)")


@dlq.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def history(limit: int, as_json: bool) -> None:
    """The audit trail of replays and purges, newest first."""
    settings = settings_or_exit(OpsSettings)
    with _database(settings) as container:
        rows = audit.history(container.deps, limit)
    if as_json:
        click.echo(json.dumps([r.as_json() for r in rows]))
        return
    if not rows:
        click.echo("no replay or purge yet")
        return
    click.echo(table(
        ["at", "actor", "action", "dry_run", "ids", "result"],
        [[r.at.isoformat(timespec="seconds"), r.actor, r.action, "yes" if r.dry_run else "no",
          _short(", ".join(r.message_ids), 40), _summary(r.result)] for r in rows],
    ))


def _summary(result: dict[str, Any]) -> str:
    status = str(result.get("status", "?"))
    if "succeeded" in result:
        return f"{status}: {result['succeeded']} ok, {result['failed']} failed"
    if "unknown_ids" in result:
        return f"{status}: unknown {', '.join(result['unknown_ids'])}"
    if "verdicts" in result:
        return f"{status}: {len(result['verdicts'])} judged"
    return status
