"""Fixtures for the concurrency tests: a pool wide enough for every thread to hold its own
connection, so the races happen in PostgreSQL and not in the pool's queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import text

from shared.bootstrap import Container, bootstrap
from shared.services.deps import Deps
from shared.settings import Settings

THREADS = 32


@pytest.fixture(scope="module")
def wide_container(settings: Settings) -> Iterator[Container]:
    c = bootstrap(settings, pool_size=THREADS + 2)
    yield c
    c.close()


@pytest.fixture
def wide_deps(wide_container: Container) -> Deps:
    """Services on the database's own clock (DatabaseClock), one connection per thread."""
    return wide_container.deps


class DatabaseTime:
    """Sleeps until a given instant of the database's clock (PostgreSQL decides expiry)."""

    def __init__(self, deps: Deps) -> None:
        with deps.session_factory() as s:
            before = time.time()
            db_now: datetime = s.execute(text("SELECT clock_timestamp()")).scalar_one()
            after = time.time()
        self.offset = db_now.timestamp() - (before + after) / 2

    def now(self) -> float:
        return time.time() + self.offset

    def sleep_until(self, instant: datetime, plus_seconds: float = 0.0) -> None:
        delay = instant.timestamp() + plus_seconds - self.now()
        if delay > 0:
            time.sleep(delay)


@pytest.fixture
def db_time(wide_deps: Deps) -> DatabaseTime:
    return DatabaseTime(wide_deps)
