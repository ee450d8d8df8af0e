"""Engine and session factory, built from settings by the composition root (bootstrap).

What runs on them (one transaction, its retries, how a failure is classified) is in
:mod:`shared.persistence.transactions`.
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg2
from psycopg2 import extensions as pg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from shared.persistence import failover

# How much longer than its statement_timeout a bounded connection waits for the server's
# answer: a slow but working server cancels the statement itself (its own error, the
# connection kept) before the client gives up on it (see wait_for_server).
HUNG_SERVER_MARGIN_S = 0.5
TCP_USER_TIMEOUT_MS = 10_000

_READ = select.POLLIN | select.POLLERR | select.POLLHUP
_WRITE = select.POLLOUT | select.POLLERR | select.POLLHUP


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    statement_timeout_ms: int = 4000,
    connect_timeout_s: int = 2,
    bound_server_waits: bool = False,
) -> Engine:
    """An engine that fails fast when PostgreSQL is away (503 within 5 s, never a hang).

    The timeouts bound every wait: connecting, waiting for a pooled connection, and each
    statement. A pooled connection the server has closed is replaced at checkout
    (:func:`_closed_by_server`), so the pool survives a database restart.

    ``statement_timeout`` is the server's: a server that hangs (stopped, or behind a
    network that still acknowledges every byte) never applies it, and TCP keepalives see
    nothing wrong. With ``bound_server_waits`` (the API's and the worker's engines) the
    client gives up too, ``HUNG_SERVER_MARGIN_S`` after the statement timeout: each round
    trip of a statement, a BEGIN, a COMMIT or a rollback fails with an OperationalError
    and its connection is closed, so the pool discards it, the API answers 503 and a
    worker's role pauses as for an outage (:func:`wait_for_server`). Unbounded engines
    (the commands': the reconciliation turns statement_timeout off for its long
    statements) wait for the server as long as it takes.
    """
    connect_args: dict[str, Any] = {
        "connect_timeout": connect_timeout_s,
        "options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout=3000 -c timezone=UTC",
        "application_name": "exchange-tokens",
        # TCP keepalives notice a dead server instead of waiting forever on a socket.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        # ... but keepalives only probe an idle connection. One whose statement the
        # network lost mid-send (a partition) retransmits instead, for the kernel's
        # ~15 minutes: give up after 10 s of data unacknowledged. An answer the server
        # takes long to compute is no unacknowledged data: long statements are not cut.
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    }
    if bound_server_waits:
        # psycopg2's wait callback is one per process: installed by the API's or the
        # worker's engine, it serves every connection of that process (an unbounded one
        # waits as long as the server takes). The other commands and the benchmark's
        # plain-SQL baselines keep libpq's own blocking wait.
        pg.set_wait_callback(wait_for_server)
        bound_s = statement_timeout_ms / 1000 + HUNG_SERVER_MARGIN_S
        connect_args["connection_factory"] = type(
            "BoundedConnection", (BoundedConnection,), {"server_wait_bound_s": bound_s})
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=2,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    event.listen(engine, "checkout", _closed_by_server)
    failover.install(engine)  # a server turned read-only counts as a lost connection
    return engine


class BoundedConnection(pg.connection):
    """A psycopg2 connection whose every round trip to the server has a deadline
    (``server_wait_bound_s``, set on the subclass :func:`make_engine` makes)."""

    server_wait_bound_s: float | None = None


def wait_for_server(conn: Any) -> None:
    """psycopg2's wait callback (``psycopg2.extensions.set_wait_callback``): psycopg2 sends
    each statement without blocking (and also BEGIN, COMMIT, a rollback, the connection's
    setup) and calls this to wait for the answer, instead of blocking in libpq.

    Connecting is bounded by the DSN's ``connect_timeout``, as libpq bounds a blocking
    connect (libpq does not apply it to a non-blocking one). A round trip of a
    :class:`BoundedConnection` is bounded by its ``server_wait_bound_s``; other connections
    wait as long as the server takes, as libpq would. When a bound passes, the
    OperationalError raised here makes psycopg2 close the connection (the connection's
    ``closed`` is then set): SQLAlchemy sees a disconnect and invalidates it, and
    :func:`~shared.persistence.transactions.is_unavailable` says so. A cancel request is not sent: it would wait on the
    same silent server.

    Cost per statement: a Python call, two ``conn.poll()`` and one ``poll(2)`` instead of
    libpq's own wait, a few microseconds of CPU.
    """
    if conn.status == pg.STATUS_SETUP:  # connecting: conn.poll() moves it on
        timeout = pg.parse_dsn(conn.dsn).get("connect_timeout")
        bound = float(timeout) if timeout and float(timeout) > 0 else None
        what = "connect"
    else:
        bound = getattr(conn, "server_wait_bound_s", None)
        what = "answer"
    deadline = None if bound is None else time.monotonic() + bound
    while True:
        state = conn.poll()
        if state == pg.POLL_OK:
            return
        poller = select.poll()
        poller.register(conn.fileno(), _READ if state == pg.POLL_READ else _WRITE)
        if deadline is None:
            poller.poll()
        elif not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            raise psycopg2.OperationalError(
                f"the database did not {what} within {bound:g} s (client-side bound:"
                " the server hangs or the network is stalled)")


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """``pool_pre_ping`` without its round trip. An idle connection has nothing to read;
    when the server ends it (a restart, a failover, ``pg_terminate_backend``) it sends a
    FATAL message and closes the socket, which then polls readable. That costs one
    ``poll`` instead of a ``SELECT 1`` on every checkout, which was a third of the round
    trips of an issue. The pool then drops every connection older than this one and
    checks out a fresh one (SQLAlchemy's documented checkout-event protocol). A server
    that vanished without a word (a dead host) or hangs is noticed by the statement
    itself: TCP keepalives and, on the API's and the worker's engines, the client-side
    bound of :func:`wait_for_server` bound that wait, as they bounded the ping's.
    """
    if dbapi_connection.closed:
        raise InvalidatePoolError("connection already closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise InvalidatePoolError("connection closed by the server")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
