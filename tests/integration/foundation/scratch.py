"""Throwaway databases beside the session's own, for tests that must see the whole
database: commands that act on every token (cleanup, reconcile), or that create it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from shared.persistence import migrate as migrations


def scratch_url(session_database_url: str, purpose: str) -> str:
    """A URL on the same server, naming a database that does not exist yet."""
    url = make_url(session_database_url)
    name = f"{url.database}_{purpose}_{uuid.uuid4().hex[:6]}"
    return url.set(database=name).render_as_string(hide_password=False)


drop_database = migrations.drop_database


@contextmanager
def scratch_database(session_database_url: str, purpose: str) -> Iterator[str]:
    """A fresh, migrated database, dropped afterwards even if the test fails."""
    url = scratch_url(session_database_url, purpose)
    try:
        migrations.ensure_database(url)
        migrations.upgrade(url)
        yield url
    finally:
        drop_database(url)
