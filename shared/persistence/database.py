"""Engine and session factory, built from settings by the composition root (bootstrap)."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
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

    ``pool_pre_ping`` makes a pooled connection survive a database restart; the timeouts
    bound every wait: connecting, waiting for a pooled connection, and each statement.
    """
    return create_engine(
        url,
        pool_pre_ping=True,
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
