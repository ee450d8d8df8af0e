"""What every command shares: settings from the environment, logging, a clean failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from pika.exceptions import AMQPConnectionError
from sqlalchemy.exc import DBAPIError

from shared.logs import configure_logging
from shared.persistence.migrate import redact
from shared.persistence.transactions import is_unavailable
from shared.settings import Settings, SettingsError, load_settings


def settings_or_exit(model: type[Settings] = Settings) -> Settings:
    try:
        settings = load_settings(model)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings.log_level)
    return settings


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain aligned text table, right-aligning numbers."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def fmt(cells: list[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            out.append(cell.rjust(width) if cell.lstrip("-").isdigit() else cell.ljust(width))
        return "  ".join(out).rstrip()

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in rows)
    return "\n".join(lines)


@contextmanager
def outages_as_errors(settings: Settings, error: type[click.ClickException] = click.ClickException,
                      outcome: str = "") -> Iterator[None]:
    """A server that cannot be reached ends the command with one line naming it (raised
    as ``error``, whose exit code it carries; ``outcome`` says what that means for the
    command), not a traceback an operator has to read at night."""
    tail = f"; {outcome}" if outcome else ""
    try:
        yield
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise error(f"database unavailable at {redact(settings.database_url)} "
                    f"({first}){tail}") from None
    except AMQPConnectionError as exc:
        raise error(f"broker unavailable at {redact(settings.amqp_url)} ({exc!r}){tail}"
                    ) from None
