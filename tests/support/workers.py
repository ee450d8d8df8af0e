"""Helpers of the tests that run workers: waiting for a condition, reading the outbox and
the ledger, emptying queues. Used by the integration and the end-to-end tiers."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import text

from shared.messaging.topology import DELAY_LEVELS, Topology


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)


def unsent_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()


def purge_queues(channel, topo: Topology) -> None:
    """Start from empty consumer and delay queues (earlier tests leave messages behind)."""
    for queue in [*topo.consumer_queues(), *(topo.delay_queue(k) for k in range(DELAY_LEVELS))]:
        channel.queue_purge(queue)


def refunds(engine, token_ids) -> dict:
    """token_id → list of refund ledger rows (created_at)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT token_id, created_at FROM ledger WHERE kind = 'refund'"
                 " AND token_id = ANY(:ids)"),
            {"ids": list(token_ids)},
        ).all()
    out: dict = {t: [] for t in token_ids}
    for token_id, created_at in rows:
        out[token_id].append(created_at)
    return out


def classify(engine, token_ids) -> dict[str, list]:
    """Jepsen style: every token is lost (never refunded), duplicated or once."""
    result: dict[str, list] = {"lost": [], "duplicated": [], "once": []}
    for token_id, rows in refunds(engine, token_ids).items():
        key = "lost" if not rows else "once" if len(rows) == 1 else "duplicated"
        result[key].append(token_id)
    return result
