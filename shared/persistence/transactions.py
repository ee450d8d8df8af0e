"""Transactions on the engine: one unit of work, its retries, and what a failure means.

A service runs each call as one transaction (:func:`unit_of_work`), run again whole on a
deadlock or serialization failure (:func:`retry_transaction`). The ``is_*`` classifiers
tell an outage (answer 503, pause a consumer) from a refused or timed-out statement.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.persistence import failover

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Deadlock and serialization failure: PostgreSQL asks us to run the whole transaction again.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
# Lock not available (lock_timeout) and query canceled (statement_timeout).
TIMEOUT_SQLSTATES = {"55P03", "57014"}


def is_retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "pgcode", None) in RETRYABLE_SQLSTATES


def is_timeout(exc: BaseException) -> bool:
    """A statement the server gave up on (lock_timeout, statement_timeout): the database
    works, this statement did not, and running it again may well succeed or fail alike."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "pgcode", None) in TIMEOUT_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """True when the database cannot be reached (as opposed to a refused statement).

    Not for a lock or statement timeout: psycopg2 raises those as OperationalError too,
    but the database answered. A consumer that took one for an outage paused and held its
    whole batch, retrying it without counting an attempt for as long as one of its rows
    stayed locked; handled as a failure, the batch is split and the other rows go on."""
    if isinstance(exc, OperationalError) and not is_retryable(exc) and not is_timeout(exc):
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
                    if failover.retry_on_new_primary(exc, attempt):
                        log.warning("transaction retried on the new primary", extra={"fn": fn.__name__})
                        continue
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
        broken = engine.dialect.is_disconnect(exc, raw, None) or failover.is_read_only(exc)
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
