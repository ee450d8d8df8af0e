"""Expiry through the broker's delay levels, end to end: issue → relay → schedule-expiry →
delay chain → expire → refund, with the periodic sweep far away (it must not be what
restores the tokens)."""

from __future__ import annotations

import dataclasses

from shared import services
from tests.support.workers import classify, refunds, wait_until

NO_SWEEP = 3600.0  # the sweep runs once at start, then not during the test


def issue(deps, user, ttl: int, points: int = 10):
    services.credit(deps, user, points)
    return services.issue(dataclasses.replace(deps, token_ttl_seconds=ttl), user, points, None)


def test_tokens_of_one_to_three_seconds_are_restored_within_a_second_of_expiry(
    container, deps, user, start_worker
):
    start_worker(sweep_interval=NO_SWEEP)
    deps = dataclasses.replace(deps, max_active_tokens=1000)
    tokens = {}
    for i in range(30):
        issued = issue(deps, user, ttl=1 + i % 3)
        tokens[issued.token.id] = issued.token.expires_at
    wait_until(lambda: not classify(container.engine, tokens)["lost"], timeout=20)
    lateness = [
        (rows[0] - tokens[token_id]).total_seconds()
        for token_id, rows in refunds(container.engine, tokens).items()
    ]
    assert classify(container.engine, tokens)["once"] == list(tokens)
    assert min(lateness) >= 0  # never early: the database decides
    assert max(lateness) < 1.0, sorted(lateness)[-5:]
    assert services.balance(deps, user) == 300


def test_a_long_token_issued_first_does_not_hold_back_a_short_one(
    container, deps, user, start_worker
):
    start_worker(sweep_interval=NO_SWEEP)
    deps = dataclasses.replace(deps, max_active_tokens=1000)
    long = issue(deps, user, ttl=30)
    short = issue(deps, user, ttl=1)
    wait_until(lambda: refunds(container.engine, [short.token.id])[short.token.id], timeout=5)
    [restored_at] = refunds(container.engine, [short.token.id])[short.token.id]
    assert (restored_at - short.token.expires_at).total_seconds() < 1.0
    assert refunds(container.engine, [long.token.id])[long.token.id] == []


def test_a_token_of_the_configured_lifetime_waits_in_the_lifetime_queue_one_hop(
    container, deps, user, settings
):
    import pika
    from pika.exceptions import ChannelClosedByBroker

    from shared.messaging.names import Names
    from shared.messaging.topology import Topology, declare_topology
    from workers.worker import Worker, WorkerOptions

    topo = Topology(Names(settings.broker_namespace), token_ttl_seconds=3)
    declare_topology(settings)
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = [connection.channel()]

    def declare(queue: str) -> pika.frame.Method | None:
        """Passive declare; None while the queue does not exist (404 closes the channel)."""
        try:
            return channel[0].queue_declare(queue, passive=True)
        except ChannelClosedByBroker:
            channel[0] = connection.channel()
            return None

    def waiting() -> int:
        ok = declare(topo.lifetime_queue)
        return ok.method.message_count if ok else 0

    worker = Worker(container, WorkerOptions(sweep_interval=NO_SWEEP))
    worker.start(topo)
    try:
        # Issue only once the scheduler consumes: a timer must be scheduled within 100 ms
        # of its token to be due one lifetime (to the unit) from then.
        schedule = Names(settings.broker_namespace).consumer_queue("schedule-expiry")
        wait_until(lambda: (ok := declare(schedule)) and ok.method.consumer_count, timeout=10)
        deps = dataclasses.replace(deps, max_active_tokens=1000)
        tokens = {}
        for _ in range(5):
            issued = issue(deps, user, ttl=3)
            tokens[issued.token.id] = issued.token.expires_at
        # The timers wait in the queue whose TTL is the lifetime (declared by the
        # scheduler on first use), not in the binary chain...
        wait_until(lambda: waiting() == 5, timeout=2.5)
        # ...and come out of it on time, each refunded once.
        wait_until(lambda: not classify(container.engine, tokens)["lost"], timeout=10)
        assert classify(container.engine, tokens)["once"] == list(tokens)
        lateness = [(rows[0] - tokens[t]).total_seconds()
                    for t, rows in refunds(container.engine, tokens).items()]
        assert 0 <= min(lateness) and max(lateness) < 1.0, lateness
        assert waiting() == 0
    finally:
        worker.stop()
        channel[0].queue_delete(topo.lifetime_queue)
        connection.close()
