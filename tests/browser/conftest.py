"""Browser tests: headless Debian Chromium (tests/support/browser.py) against the real API,
workers, PostgreSQL and RabbitMQ, in a broker namespace of their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.support.browser import launch_chromium
from tests.support.ops_fixtures import channel, namespace_of_its_own, ops_topology, stack

__all__ = ["channel", "ops_topology", "stack"]  # fixtures, used by name


@pytest.fixture(scope="session")
def ops_settings(settings: Settings) -> Iterator[Settings]:
    yield from namespace_of_its_own(settings, "web")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b
