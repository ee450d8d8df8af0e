"""docs/api.md lists every route the Flask app serves, and no route it does not serve."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from api.app import create_app
from shared.settings import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def documented_routes(text: str) -> set[tuple[str, str]]:
    """(method, path) of every row of the "Routes" table: its first cell holds one or more
    `` `METHOD /path` `` items; an item without a method takes the previous one's."""
    section = text.split("\n## Routes\n", 1)[1].split("\n## ", 1)[0]
    routes = set()
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 3 or not cells[1].strip().startswith("`"):
            continue
        method = None
        for item in re.findall(r"`([^`]+)`", cells[1]):
            first, _, rest = item.partition(" ")
            if first in METHODS:  # a path may hold spaces: `<any(svg, png):kind>`
                method, path = first, rest.strip()
            else:
                path = item.strip()
            assert method is not None, line
            routes.add((method, path))
    return routes


def served_routes(app: Flask) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods or () if method in METHODS}


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    # No server is contacted: the engine connects lazily.
    app = create_app(Settings(jwt_secret="s3cret", database_url="postgresql://127.0.0.1:1/x"))
    yield app
    app.extensions["container"].close()


def test_every_served_route_is_in_the_routes_table(app: Flask) -> None:
    missing = served_routes(app) - documented_routes(DOC.read_text(encoding="utf-8"))
    assert not missing, f"add to docs/api.md, Routes: {sorted(missing)}"


def test_every_route_in_the_table_is_served(app: Flask) -> None:
    stale = documented_routes(DOC.read_text(encoding="utf-8")) - served_routes(app)
    assert not stale, f"not served, yet in docs/api.md: {sorted(stale)}"


def test_the_table_reader_sees_a_missing_row(app: Flask) -> None:
    text = DOC.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `GET /readyz`"))
    assert ("GET", "/readyz") in served_routes(app) - documented_routes(text.replace(row, ""))
