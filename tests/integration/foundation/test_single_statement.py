"""single_statement: the issue's driver cursor must fail like the rest of the code (as
SQLAlchemy's errors) and never hand a broken or autocommit connection back to the pool."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.bootstrap import bootstrap
from shared.persistence.transactions import is_unavailable, single_statement


@pytest.fixture
def engine(settings):
    container = bootstrap(settings, pool_size=1)
    yield container.engine
    container.close()


def test_a_refused_statement_is_sqlalchemys_error_and_the_connection_goes_back_clean(engine):
    with pytest.raises(DBAPIError) as refused, single_statement(engine) as cursor:
        cursor.execute("SELECT 1 / 0")
    assert refused.value.orig.pgcode == "22012"  # division_by_zero, not an outage
    assert not refused.value.connection_invalidated and not is_unavailable(refused.value)
    # The pool's only connection is back, out of autocommit, as sessions expect.
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_a_connection_dropped_mid_statement_is_an_outage_and_is_replaced(engine):
    with engine.connect() as conn:
        first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with pytest.raises(DBAPIError) as dropped, single_statement(engine) as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        cursor.fetchone()
    assert dropped.value.connection_invalidated
    assert is_unavailable(dropped.value)  # the API answers 503 for it
    with single_statement(engine) as cursor:  # a fresh connection from the same pool
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != first
