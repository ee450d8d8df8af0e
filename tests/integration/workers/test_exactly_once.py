"""Exactly-once refunds whatever the broker repeats: duplicated events, duplicated timers,
several workers at once."""

from __future__ import annotations

import dataclasses
import time

import pika
import pytest
from sqlalchemy import text

from schemas.events import TokenExpired
from shared import services
from shared.messaging.topology import DELAY_LEVELS, delay_routing_key
from tests.support.workers import classify, unsent_count, wait_until

ALL_BUT_SWEEP = ["relay", "schedule-expiry", "expire", "exchange-requests", "audit"]


def snapshot(engine, user) -> tuple:
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT balance FROM accounts WHERE user_id = :u"),
                         {"u": user}).scalar_one(),
            conn.execute(text("SELECT kind, count(*) FROM ledger WHERE user_id = :u"
                              " GROUP BY kind ORDER BY kind"), {"u": user}).all(),
            conn.execute(text("SELECT count(*) FROM exchange_requests WHERE user_id = :u"),
                         {"u": user}).scalar_one(),
        )


def short_deps(deps, ttl=1):
    return dataclasses.replace(deps, token_ttl_seconds=ttl, max_active_tokens=1000)


def publish_timer(broker, topology, token, user, delay_ms: float) -> None:
    timer = TokenExpired(token_id=token.id, user_id=user, points=token.points,
                         expires_at=token.expires_at)
    broker.confirm_delivery()
    broker.basic_publish(topology.delay_exchange(DELAY_LEVELS - 1), delay_routing_key(delay_ms, "expire"),
                         timer.model_dump_json().encode(),
                         pika.BasicProperties(delivery_mode=2, message_id=str(timer.event_id)),
                         mandatory=True)


def test_every_event_delivered_twice_changes_nothing(
    container, deps, user, merchant, topology, broker, start_worker
):
    start_worker(roles=ALL_BUT_SWEEP)
    deps = short_deps(deps)
    services.credit(deps, user, 100)
    tokens = [services.issue(deps, user, 10).token for _ in range(5)]
    services.redeem(deps, tokens[0].code, merchant)
    wait_until(lambda: len(classify(container.engine, [t.id for t in tokens[1:]])["once"]) == 4,
               timeout=15)
    wait_until(lambda: snapshot(container.engine, user)[2] == 1, timeout=10)
    before = snapshot(container.engine, user)
    assert before[0] == 90  # 100 - 5 x 10 + 4 refunds of 10
    # When every event of this user is published again (as after a relay crash between the
    # confirms and its commit), and every timer is sent twice more
    with container.engine.begin() as conn:
        again = conn.execute(text("UPDATE outbox SET published_at = NULL"
                                  " WHERE payload->>'user_id' = :u"), {"u": user}).rowcount
    assert again == 5 + 1 + 4  # issued x5, redeemed, expired x4 (a credit has no event)
    for token in tokens:
        for _ in range(2):
            publish_timer(broker, topology, token, user, 0)
    wait_until(lambda: unsent_count(container.engine) == 0, timeout=10)
    time.sleep(2)  # let the consumers handle the copies
    # Then nothing changed: one refund per expired token, one exchange request
    assert snapshot(container.engine, user) == before


def test_duplicate_timers_for_an_active_token_restore_it_once(
    container, deps, user, topology, broker, start_worker
):
    start_worker(roles=["expire"])
    services.credit(deps, user, 10)
    token = services.issue(short_deps(deps, ttl=2), user, 10).token
    # Given four timers for the same token, due at once, early and on time
    for delay in (0, 500, 2000, 2000):
        publish_timer(broker, topology, token, user, delay)
    wait_until(lambda: classify(container.engine, [token.id])["once"], timeout=10)
    time.sleep(1)
    assert classify(container.engine, [token.id])["once"] == [token.id]
    assert services.balance(deps, user) == 10


def run_many_workers(container, deps, start_worker, n_workers: int, n_tokens: int, users):
    for _ in range(n_workers):
        start_worker(roles=ALL_BUT_SWEEP)
    ids = []
    for i in range(n_tokens):
        user = users[i % len(users)]
        ids.append(services.issue(short_deps(deps, ttl=1 + i % 3), user, 1).token.id)
    wait_until(lambda: not classify(container.engine, ids)["lost"], timeout=60, interval=0.2)
    time.sleep(1)
    result = classify(container.engine, ids)
    assert result["duplicated"] == []
    assert len(result["once"]) == n_tokens


@pytest.mark.parametrize(("workers", "tokens"), [(2, 200), (4, 300)])
def test_several_workers_together_refund_each_token_exactly_once(
    container, deps, start_worker, workers, tokens
):
    users = [f"w{workers}-{i}-{time.time_ns()}" for i in range(10)]
    for u in users:
        services.credit(deps, u, 1000)
    run_many_workers(container, deps, start_worker, workers, tokens, users)
    assert all(services.balance(deps, u) == 1000 for u in users)


def test_timers_lost_on_purpose_are_caught_by_the_periodic_sweep(
    container, deps, user, topology, broker, start_worker
):
    # Given workers without the sweep, and the delay queues purged once the timers wait
    start_worker(roles=ALL_BUT_SWEEP)
    services.credit(deps, user, 100)
    ids = [services.issue(short_deps(deps, ttl=2), user, 10).token.id for _ in range(5)]
    wait_until(lambda: unsent_count(container.engine) == 0, timeout=10)
    time.sleep(0.5)  # the schedule-expiry consumer has put the timers in the delay chain
    for level in range(20):
        broker.queue_purge(topology.delay_queue(level))
    time.sleep(2.5)
    # Then nothing restored them...
    assert len(classify(container.engine, ids)["lost"]) == 5
    # ... until the sweep runs
    start_worker(roles=["sweep"], sweep_interval=0.5)
    wait_until(lambda: len(classify(container.engine, ids)["once"]) == 5, timeout=10)
    assert services.balance(deps, user) == 100
