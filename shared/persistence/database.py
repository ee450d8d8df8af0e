"""Engine and session factory, built from settings by the composition root (bootstrap)."""

from __future__ import annotations

import functools
import logging
import random
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Deadlock and serialization failure: PostgreSQL asks us to run the whole transaction again.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    statement_timeout_ms: int = 4000,
    connect_timeout_s: int = 2,
) -> Engine:
    """An engine that fails fast when PostgreSQL is away (503 within 5 s, never a hang).

    The timeouts bound every wait: connecting, waiting for a pooled connection, and each
    statement. A pooled connection the server has closed is replaced at checkout
    (:func:`_closed_by_server`), so the pool survives a database restart.
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=2,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": connect_timeout_s,
            "options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout=3000 -c timezone=UTC",
            "application_name": "exchange-tokens",
            # TCP keepalives notice a dead server instead of waiting forever on a socket.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
        },
    )
    event.listen(engine, "checkout", _closed_by_server)
    return engine


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """``pool_pre_ping`` without its round trip. An idle connection has nothing to read;
    when the server ends it (a restart, a failover, ``pg_terminate_backend``) it sends a
    FATAL message and closes the socket, which then polls readable. That costs one
    ``poll`` instead of a ``SELECT 1`` on every checkout, which was a third of the round
    trips of an issue. The pool then drops every connection older than this one and
    checks out a fresh one (SQLAlchemy's documented checkout-event protocol). A server
    that vanished without a word (a dead host) is noticed by the statement itself: TCP
    keepalives and the statement timeout bound that wait, as they bounded the ping's.
    """
    if dbapi_connection.closed:
        raise InvalidatePoolError("connection already closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise InvalidatePoolError("connection closed by the server")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def is_retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "pgcode", None) in RETRYABLE_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """True when the database cannot be reached (as opposed to a refused statement)."""
    if isinstance(exc, OperationalError) and not is_retryable(exc):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def retry_transaction(attempts: int = 5) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a whole transaction again on deadlock or serialization failure (40P01, 40001)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except DBAPIError as exc:
                    if not is_retryable(exc) or attempt == attempts:
                        raise
                    log.warning("transaction retried", extra={"attempt": attempt, "fn": fn.__name__})
                    time.sleep(random.uniform(0, 0.01 * attempt))  # noqa: S311 - jitter only
            raise AssertionError("unreachable")

        return wrapper

    return decorate


@contextmanager
def single_statement(engine: Engine) -> Iterator[Any]:
    """A driver cursor on a pooled connection in autocommit: the one statement run on it
    is its own transaction, committed by the server with no COMMIT round trip.

    For the API's hottest call (issue_token) only: SQLAlchemy's per-statement work (the
    execution context, result metadata, events) and the extra round trips cost more CPU
    than the statement itself. The pool, its checkout check and the connection settings
    are the engine's, and a driver error comes out as SQLAlchemy's
    (``DBAPIError.instance``), so the 503 path, deadlock retries and ``is_unavailable``
    see what they see everywhere else. A broken connection is invalidated, not pooled.
    """
    dbapi = engine.dialect.loaded_dbapi
    try:
        conn = engine.raw_connection()
    except dbapi.Error as exc:  # could not connect: the database is away
        raise DBAPIError.instance(None, None, exc, dbapi.Error, dialect=engine.dialect) from exc
    raw: Any = conn.dbapi_connection
    try:
        raw.autocommit = True  # no round trip: psycopg2 only stops sending BEGIN
        cursor = conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    except dbapi.Error as exc:
        broken = engine.dialect.is_disconnect(exc, raw, None)
        if broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            None, None, exc, dbapi.Error, connection_invalidated=broken, dialect=engine.dialect,
        ) from exc
    finally:
        if conn.dbapi_connection is not None and not raw.closed:  # still pooled
            raw.autocommit = False  # as every other user of the pool expects
        conn.close()


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed by the caller's ``session.commit()``, rolled back otherwise.

    A service that must keep part of its work and still refuse (a sweep before a refused
    debit) commits, then raises.
    """
    session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
