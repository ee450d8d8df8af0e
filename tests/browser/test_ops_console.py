"""The ops console in a real browser: a group of 1,000 dead letters previewed, replayed
from the page and watched to the end; the effect shown is what the database then shows;
the history and the books; a viewer sees no action and the API refuses its actions.

Each main screen is saved as a PNG: into a temporary folder by default (the path is
printed), or into docs/images/ (which the runbook, docs/dead-letters.md, shows) when
``UPDATE_SCREENSHOTS=1`` asks for it, so a test run does not rewrite tracked files.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from shared.persistence.tables import LedgerEntry
from tests.integration.ops_console.conftest import start_workers
from tests.support.ops_stack import (
    depth,
    expired_tokens,
    park_poison,
    park_timers,
    token,
    wait_for,
)

SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "exchange-tokens-screenshots"
)
USERS, PER_USER, POINTS = 10, 100, 7  # 1,000 timers
GROUP_ROW = "RuntimeError"


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"ops-console-{name}.png"), full_page=False)


def sign_in(browser: Any, url: str, bearer: str) -> Any:
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{url}/ops/")
    page.get_by_label(re.compile("Bearer token")).fill(bearer)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Open the console"
    page.keyboard.press("Enter")  # the sign-in button, reached from the keyboard
    page.locator("#main").wait_for(state="visible")
    assert errors == []
    return page


def refunds(deps: Any, token_ids: list[Any]) -> tuple[int, int, int]:
    with deps.session_factory() as session:
        row = session.execute(
            select(func.count(), func.coalesce(func.sum(LedgerEntry.amount), 0),
                   func.count(func.distinct(LedgerEntry.token_id)))
            .where(LedgerEntry.kind == "refund", LedgerEntry.token_id.in_(token_ids))
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def test_an_operator_previews_replays_a_group_of_1000_and_watches_it_finish(
        browser, stack, channel, ops_topology, ops_settings, deps):
    # Given 1,000 expired tokens whose timers are parked, and 5 poison messages
    url = stack.api()
    start_workers(stack, channel, ops_topology)
    users = [f"web-user-{uuid.uuid4().hex[:8]}" for _ in range(USERS)]
    tokens = expired_tokens(deps, users, POINTS, PER_USER)
    park_timers(channel, ops_topology, tokens)
    park_poison(channel, ops_topology, 5)
    ids = [t.id for t in tokens]

    # When an operator opens the console, the failures are grouped
    page = sign_in(browser, url, token(ops_settings, "olga", "operator"))
    groups = page.locator("#groups tbody tr")
    wait_for(lambda: groups.count() == 2, 20, "the groups")
    assert page.locator("#depth").inner_text() == "1005 parked"
    first = groups.nth(0)
    assert first.locator("td").nth(0).inner_text() == "1000"
    assert GROUP_ROW in first.inner_text()
    shot(page, "groups")

    # A message, whole
    page.locator("#messages tbody tr").first.get_by_role("button", name="Details").click()
    details = page.locator("#details-body")
    details.wait_for(state="visible")
    assert '"x-attempts": 5' in details.inner_text()
    shot(page, "message")

    # Select the group, preview the effect
    first.get_by_role("button", name="Select group").click()
    page.get_by_role("button", name="Preview the effect").click()
    page.get_by_test_id("effect-points").wait_for(timeout=60_000)
    effect = {k: int(page.get_by_test_id(f"effect-{k}").locator("b").inner_text())
              for k in ("messages", "points", "users", "noops", "failures")}
    assert effect == {"messages": 1000, "points": 1000 * POINTS, "users": USERS,
                      "noops": 0, "failures": 0}
    assert refunds(deps, ids) == (0, 0, 0)  # a preview changes nothing
    shot(page, "preview")

    # Confirm the replay, and watch its progress
    page.locator("#rate").fill("400")
    page.get_by_role("button", name="Replay…").click()
    assert "1000 messages" in page.locator("#confirm-text").inner_text()
    page.keyboard.press("Escape")  # changing one's mind starts nothing
    assert not page.locator("#confirm").is_visible()
    page.get_by_role("button", name="Replay…").click()
    page.locator("#confirm-ok").click()
    status = page.locator("#jobs tbody tr").first.get_by_test_id("job-status")
    wait_for(lambda: status.inner_text() == "running", 30, "the job to start", interval=0.05)
    progress = page.locator("#jobs tbody tr").first.get_by_test_id("job-progress")
    wait_for(lambda: 0 < int(progress.inner_text().split("/")[0]) < 1000, 30,
             "progress part-way", interval=0.05)
    page.locator("#jobs-section").scroll_into_view_if_needed()
    shot(page, "progress")
    wait_for(lambda: status.inner_text() == "done", 60, "the job to finish", interval=0.2)
    assert progress.inner_text().strip() == "1000 / 1000"

    # Then the database shows exactly the effect announced: each timer applied once
    wait_for(lambda: refunds(deps, ids)[0] == 1000, 60, "the refunds")
    time.sleep(1)
    assert refunds(deps, ids) == (1000, 1000 * POINTS, 1000)
    assert depth(channel, ops_topology.names.dead_letter_queue) == 5

    # The history says who did what, and the books are checked from the page
    history = page.locator("#history tbody tr")
    wait_for(lambda: "done: 1000 ok, 0 failed" in history.first.inner_text(), 20, "the history")
    assert "olga" in history.first.inner_text()
    assert "dry run" in history.nth(1).inner_text()
    page.locator("#history-section").scroll_into_view_if_needed()
    shot(page, "history")
    page.get_by_role("button", name="Check the books").click()
    books = page.get_by_test_id("books-status")
    books.wait_for(timeout=30_000)
    page.locator("#books-section").scroll_into_view_if_needed()
    shot(page, "books")
    assert "Balanced" in books.inner_text() or "problems found" in books.inner_text()

    # The timers, with the charts drawn from the workers' samples
    page.evaluate("() => document.querySelector('#timers-section').scrollIntoView()")
    wait_for(lambda: page.locator("#chart-depth svg polyline").count() == 1, 20, "the charts")
    assert "Dead-letter depth" in page.locator("#timers").inner_text()
    shot(page, "timers")
    page.close()


def test_a_viewer_sees_no_action_and_the_api_refuses_its_actions(
        browser, stack, channel, ops_topology, ops_settings):
    url = stack.api()
    park_poison(channel, ops_topology, 2)
    page = sign_in(browser, url, token(ops_settings, "victor", "viewer"))
    wait_for(lambda: page.locator("#groups tbody tr").count() == 1, 20, "the groups")
    assert "victor (viewer)" in page.locator("#who").inner_text()
    for name in ("Replay…", "Purge…"):
        assert not page.get_by_role("button", name=name).is_visible()
    # A viewer may still preview what a replay would do
    page.get_by_role("button", name="Select group").click()
    page.get_by_role("button", name="Preview the effect").click()
    page.get_by_test_id("effect-failures").wait_for(timeout=30_000)
    assert page.get_by_test_id("effect-failures").locator("b").inner_text() == "2"
    shot(page, "viewer")
    # The page hides the buttons; the API is what refuses.
    status = page.evaluate("""async () => {
        const r = await fetch('/api/ops/jobs', {method: 'POST', headers: {
            'Authorization': 'Bearer ' + sessionStorage.getItem('exchange-tokens-ops-token'),
            'Content-Type': 'application/json'},
            body: JSON.stringify({kind: 'purge', selection: {filter: {}}})});
        return r.status; }""")
    assert status == 403
    assert depth(channel, ops_topology.names.dead_letter_queue) == 2
    # The token is in this tab's session storage and nowhere else
    assert page.evaluate("() => localStorage.length") == 0
    assert page.context.cookies() == []
    page.close()
