"""A real, headless Chromium for the browser tests.

Debian's ``chromium`` package, driven by Playwright for Python: Playwright's own browser
download is not needed. ``make test`` on CI always has both (``.ci/run`` installs them); on
a laptop without them the browser tests are skipped with one line saying why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_chromium() -> None:
    """Skip (one line) where there is no Chromium or no Playwright; fail on CI."""
    missing = []
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python is not installed (pip install -e '.[dev]')")
    if missing:
        if os.environ.get("CI"):
            pytest.fail("browser tests need: " + "; ".join(missing))
        pytest.skip("browser tests need: " + "; ".join(missing))


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium browser; closed (with Playwright) on exit."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()
