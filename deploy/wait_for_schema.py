"""Wait until the database's schema is at the revision this image's code expects.

Run before the API or a worker starts (the Kubernetes init container): the migration Job
may still be running, and code that meets an older schema would fail on its first
query. Exits 0 once the database's alembic revision is the newest this image ships,
1 after ``--timeout`` seconds (the pod then restarts and waits again).
"""

from __future__ import annotations

import argparse
import sys
import time

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from shared.persistence.migrate import alembic_config
from shared.settings import Settings


def schema_is_current(sqlalchemy_url: str) -> tuple[bool, str]:
    expected = set(ScriptDirectory.from_config(alembic_config(sqlalchemy_url)).get_heads())
    engine = create_engine(sqlalchemy_url, pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    return current == expected, f"database at {sorted(current)}, code expects {sorted(expected)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    url = Settings().sqlalchemy_url
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            ready, state = schema_is_current(url)
        except SQLAlchemyError as exc:
            ready, state = False, f"database not answering ({type(exc).__name__})"
        if ready:
            print("schema up to date", flush=True)
            return 0
        if time.monotonic() > deadline:
            print(f"schema not ready after {args.timeout:.0f} s: {state}", file=sys.stderr)
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
