"""The SQLAlchemy models (shared/persistence/tables.py) mirror what the migrations build:
alembic's autogenerate, run against the migrated database, finds nothing to change. A
column, index or constraint added to one side only fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from shared.persistence.tables import Base


def test_the_models_match_the_migrated_schema(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_the_ledger_is_append_only_and_balances_cannot_go_negative(database_url):
    """Guarantees the models cannot express, checked in the migrated database itself."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            triggers = set(conn.execute(text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'ledger'::regclass"
                " AND NOT tgisinternal"
            )).scalars())
            checks = set(conn.execute(text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'accounts'::regclass AND contype = 'c'"
            )).scalars())
    finally:
        engine.dispose()
    assert "ledger_append_only" in triggers
    assert "CHECK ((balance >= 0))" in checks
