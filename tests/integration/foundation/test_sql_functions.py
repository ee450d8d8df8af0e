"""The readable SQL functions (shared/persistence/sql/*.sql) are what the migrations built.

Each file is created in a scratch schema of the migrated database; PostgreSQL's own
rendering of that function (``pg_get_functiondef``: arguments, result, language,
volatility and body) must equal its rendering of the function the migrations made. A
migration that changes a function without its file, or the reverse, fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

import shared.persistence

SQL_DIR = Path(shared.persistence.__file__).parent / "sql"
SCRATCH = "sql_files_check"
CREATED = re.compile(r"^CREATE FUNCTION\s+([a-z_][a-z0-9_]*)\s*\(", re.MULTILINE)


def sql_files() -> list[Path]:
    return sorted(SQL_DIR.glob("*.sql"))


def definition(conn: Connection, schema: str, name: str) -> str:
    rows = conn.execute(text(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = :schema AND p.proname = :name"
    ), {"schema": schema, "name": name}).scalars().all()
    assert len(rows) == 1, f"{schema}.{name}: {len(rows)} definitions"
    return rows[0].replace(f"FUNCTION {schema}.", "FUNCTION <schema>.", 1)


@pytest.fixture
def conn(database_url: str) -> Iterator[Connection]:
    engine = create_engine(database_url)
    with engine.connect() as c:
        tx = c.begin()  # everything below is rolled back: the scratch schema never commits
        c.execute(text(f"CREATE SCHEMA {SCRATCH}"))
        yield c
        tx.rollback()
    engine.dispose()


def test_there_are_sql_files_and_each_creates_one_function() -> None:
    names = {p.stem for p in sql_files()}
    assert {"issue_token", "refund_tokens", "ledger_append_only"} <= names
    for path in sql_files():
        assert CREATED.findall(path.read_text()) == [path.stem], path.name


@pytest.mark.parametrize("path", sql_files(), ids=lambda p: p.name)
def test_the_migrated_database_has_exactly_the_function_of_the_file(
    conn: Connection, path: Path,
) -> None:
    conn.execute(text(f"SET LOCAL search_path TO {SCRATCH}, public"))
    # exec_driver_sql: the body's % and : are SQL, not bind parameters.
    conn.exec_driver_sql(path.read_text().replace("%", "%%"))
    from_file = definition(conn, SCRATCH, path.stem)
    migrated = definition(conn, "public", path.stem)
    assert from_file == migrated


def test_the_comparison_sees_a_changed_body(conn: Connection) -> None:
    source = (SQL_DIR / "ledger_append_only.sql").read_text()
    changed = source.replace("append-only", "append only")
    assert changed != source
    conn.execute(text(f"SET LOCAL search_path TO {SCRATCH}, public"))
    conn.exec_driver_sql(changed.replace("%", "%%"))
    assert definition(conn, SCRATCH, "ledger_append_only") != definition(
        conn, "public", "ledger_append_only")
