"""The reconciler checks a whole database, and these tests corrupt theirs on purpose: they
run in a throwaway database of their own, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from shared.bootstrap import Container, bootstrap
from shared.settings import Settings
from tests.integration.foundation.scratch import scratch_database
from tests.support.root_logging import kept_root_logging

TABLES = "accounts, ledger, exchange_tokens, exchange_requests, outbox"


@pytest.fixture(scope="module")
def books_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "books") as url:
        yield url


@pytest.fixture(scope="module")
def books_container(settings: Settings, books_url: str) -> Iterator[Container]:
    c = bootstrap(settings.model_copy(update={"database_url": books_url}), pool_size=4)
    yield c
    c.close()


@pytest.fixture
def books(books_container: Container) -> Container:
    """An empty set of books (TRUNCATE is not UPDATE or DELETE: the append-only trigger
    lets a test reset its own throwaway ledger)."""
    with books_container.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES}"))
    return books_container


@pytest.fixture(autouse=True)
def _keep_test_logging() -> Iterator[None]:
    with kept_root_logging():
        yield
