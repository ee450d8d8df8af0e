"""The broker away: the services keep working, the outbox holds the events, and every
expiry still happens once the broker is back."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import threading
import time

import pytest

from shared import services
from tests.support.tcp_proxy import TcpProxy
from tests.support.workers import (
    classify,
    purge_queues,
    unsent_count,
    wait_until,
)
from workers.worker import STOP_TIMEOUT_SECONDS, Worker, WorkerOptions

ALL_BUT_SWEEP = ["relay", "schedule-expiry", "expire", "exchange-requests", "audit"]


@pytest.fixture
def broker_proxy(settings):
    proxy = TcpProxy.in_front_of(settings.amqp_url, 5672)
    yield proxy
    proxy.down()


def test_tokens_issued_while_the_broker_is_unreachable_all_expire_once_it_is_back(
    container, deps, user, topology, broker, broker_proxy
):
    purge_queues(broker, topology)  # only this test's messages in the way
    # Given a worker whose only way to the broker is cut
    worker = Worker(container, WorkerOptions(
        roles=ALL_BUT_SWEEP, amqp_url=broker_proxy.url_for(container.settings.amqp_url)))
    worker.start(topology)
    try:
        # When users keep issuing tokens
        services.credit(deps, user, 200)
        short = dataclasses.replace(deps, token_ttl_seconds=1, max_active_tokens=100)
        backlog_before = unsent_count(container.engine)
        ids = [services.issue(short, user, 10).token.id for _ in range(20)]
        # Then the outbox holds their events, and nothing is refunded without the broker
        assert unsent_count(container.engine) >= backlog_before + 20
        time.sleep(2)
        assert len(classify(container.engine, ids)["lost"]) == 20
        # And once the broker is reachable again, every token is restored exactly once
        broker_proxy.up()
        wait_until(lambda: len(classify(container.engine, ids)["once"]) == 20, timeout=40,
                   interval=0.2)
        time.sleep(1)
        assert classify(container.engine, ids)["duplicated"] == []
        assert services.balance(deps, user) == 200
    finally:
        worker.stop()


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def dead_letter_retry_seconds() -> float:
    """How long the broker holds a timer it could not hand on before it tries again.

    A quorum queue's at-least-once dead-lettering keeps an expired message whose target
    did not confirm it (the target queue still recovering after a restart) and sends it
    again only after ``dead_letter_worker_publisher_confirm_timeout`` (180 s by default
    on RabbitMQ 3.10 to 4.x): late, not lost."""
    out = rabbitmqctl("eval",
                      "application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout).")
    match = re.search(r"\{ok,\s*(\d+)\}", out)
    return int(match.group(1)) / 1000 if match else 180.0


def test_a_worker_stops_in_time_when_its_broker_hangs(
    container, deps, user, topology, broker_proxy
):
    """A broker that hangs (stopped, or a stalled network that still acknowledges)
    answers no confirm and no close: every role of the worker still stops within the
    worker's deadline, and what was in flight comes back (rows unsent, messages unacked)."""
    # Given a worker with every queue role and the relay, through a broker that then hangs
    broker_proxy.up()
    worker = Worker(container, WorkerOptions(
        roles=ALL_BUT_SWEEP, amqp_url=broker_proxy.url_for(container.settings.amqp_url)))
    worker.start(topology)
    stopped = False
    try:
        services.credit(deps, user, 100)
        services.issue(deps, user, 10)  # the roles are connected and working
        wait_until(lambda: unsent_count(container.engine) == 0, timeout=20)
        broker_proxy.freeze()
        services.issue(deps, user, 10)  # the relay's next batch meets the hung broker
        time.sleep(1.5)
        # When it is stopped, then every role stops within the deadline
        started = time.monotonic()
        assert worker.stop(), "a role still waited on the hung broker"
        stopped = True
        assert time.monotonic() - started < STOP_TIMEOUT_SECONDS
        assert unsent_count(container.engine) >= 1  # the unconfirmed event stays unsent
    finally:
        broker_proxy.thaw()
        if not stopped:
            worker.stop()


@pytest.mark.timeout(600)  # a timer the broker held for its retry window (below) arrives late
def test_a_broker_restart_while_publishing_loses_no_expiry(
    container, deps, user, topology, start_worker
):
    """Without the sweep, so that only the broker path (outbox, confirms, delay chain) can
    restore the points: every token is restored exactly once. Timers that expired while
    the restarted broker's expire queue was not yet taking messages come late, after the
    broker's own dead-lettering retry window; the sweep restores those earlier in a real
    deployment (docs/messaging.md)."""
    # Given a worker running every role but the sweep, and tokens issued without pause
    start_worker(roles=ALL_BUT_SWEEP)
    services.credit(deps, user, 10_000)
    short = dataclasses.replace(deps, token_ttl_seconds=3, max_active_tokens=10_000)
    ids: list = []
    done = threading.Event()

    def issue_steadily() -> None:
        while not done.is_set():
            ids.append(services.issue(short, user, 10).token.id)
            time.sleep(0.02)

    issuer = threading.Thread(target=issue_steadily, daemon=True)
    issuer.start()
    try:
        time.sleep(1)
        # When the broker application stops and starts again mid-stream
        rabbitmqctl("stop_app")
        time.sleep(1)
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
    time.sleep(1)
    done.set()
    issuer.join(5)
    # Then every token issued before, during and after is restored exactly once
    wait_until(lambda: not classify(container.engine, ids)["lost"],
               timeout=30 + dead_letter_retry_seconds() + 30, interval=0.5)
    time.sleep(1)
    result = classify(container.engine, ids)
    assert result["duplicated"] == []
    assert len(result["once"]) == len(ids) > 50
    assert services.balance(deps, user) == 10_000


def test_a_synchronous_call_to_a_hung_broker_gives_up_as_a_lost_connection(settings, broker_proxy):
    """Outside a stop too: a reply the broker never sends (queue_declare, basic_cancel)
    ends after SYNC_REPLY_SECONDS as a connection error, which every role answers by
    reconnecting with backoff, instead of holding the role for ever."""
    from shared.messaging import amqp_client

    broker_proxy.up()
    connection = amqp_client.connect(broker_proxy.url_for(settings.amqp_url), "probe")
    channel = connection.channel()
    broker_proxy.freeze()
    started = time.monotonic()
    with pytest.raises(amqp_client.CONNECTION_ERRORS):
        channel.queue_declare("never-answered", passive=True)
    assert time.monotonic() - started < amqp_client.SYNC_REPLY_SECONDS + 2
    started = time.monotonic()
    amqp_client.close_quietly(connection)  # and a close waits briefly, never raises
    assert time.monotonic() - started < amqp_client.STOPPING_REPLY_SECONDS + 1
    broker_proxy.thaw()
