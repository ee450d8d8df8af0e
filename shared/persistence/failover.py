"""Surviving a PostgreSQL failover with a pool of connections.

``target_session_attrs=read-write`` picks the primary only when a connection opens. After
a failover the pool still holds connections to the old primary; if it came back as a
standby (or was fenced read-only) it still answers ``SELECT 1``, and every write fails
with SQLSTATE 25006 (read_only_sql_transaction). Such a connection is as good as dead:

* the engine's ``handle_error`` hook marks the error as a disconnect, so SQLAlchemy
  invalidates the connection and every other one pooled before it (they point at the
  same server), and the next checkout opens a new one, which libpq sends to the new
  primary;
* :func:`retry_on_new_primary` says a transaction that failed that way may run once
  more: the server refused it before anything was written;
* the API answers 503 with the error, never 500 (``is_unavailable`` sees an invalidated
  connection), and ``/readyz`` reports a server that takes no writes as not ready.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event, text

# read_only_sql_transaction; a hot standby answers writes with it too.
READ_ONLY_SQLSTATES = frozenset({"25006"})
# The server is starting, stopping or in recovery and refuses sessions for now.
NOT_YET_SQLSTATES = frozenset({"57P03"})


class ServerNotWritable(RuntimeError):
    """The database answered, but takes no writes (a standby, or a demoted primary)."""


def is_read_only(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "pgcode", None) in READ_ONLY_SQLSTATES | NOT_YET_SQLSTATES


def retry_on_new_primary(exc: BaseException, attempt: int) -> bool:
    """Run the transaction again? Once, when the server turned out to be read-only."""
    return attempt == 1 and is_read_only(exc)


def _read_only_is_a_disconnect(context: Any) -> None:
    if is_read_only(context.original_exception):
        context.is_disconnect = True  # SQLAlchemy invalidates the connection and the pool


def install(engine: Engine) -> None:
    event.listen(engine, "handle_error", _read_only_is_a_disconnect)


def require_writable(conn: Connection) -> None:
    if conn.execute(text("SELECT pg_is_in_recovery() OR current_setting("
                         "'transaction_read_only') = 'on'")).scalar():
        raise ServerNotWritable("the database server takes no writes (standby or demoted)")
