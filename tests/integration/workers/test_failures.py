"""Poison messages, failing handlers and database outages."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pika
import pytest
from sqlalchemy import text

from schemas.events import TokenRedeemed
from shared.bootstrap import bootstrap
from shared.messaging import names as h
from shared.messaging.topology import delay_routing_key
from tests.support.tcp_proxy import TcpProxy
from tests.support.workers import wait_until
from workers import metrics
from workers.worker import STOP_TIMEOUT_SECONDS, Worker, WorkerOptions, worker_container

SHORT_RETRIES = (0.2, 0.2, 0.2, 0.2)


def publish(broker, exchange, routing_key, body: bytes, message_id: str | None = None) -> None:
    broker.confirm_delivery()
    broker.basic_publish(
        exchange, routing_key, body,
        pika.BasicProperties(delivery_mode=2, message_id=message_id,
                             content_type="application/json"),
        mandatory=True,
    )


def dead_letters(broker, queue: str, match) -> list:
    """Take the parking queue's messages that ``match`` (ack them), leave the others."""
    mine, others = [], []
    while True:
        method, props, body = broker.basic_get(queue, auto_ack=False)
        if method is None:
            break
        (mine if match(props, body) else others).append((method, props, body))
    for method, _, _ in mine:
        broker.basic_ack(method.delivery_tag)
    for method, _, _ in others:
        broker.basic_nack(method.delivery_tag, requeue=True)
    return [(props, body) for _, props, body in mine]


def redeemed_event(deps, user_id: str) -> TokenRedeemed:
    """The event of a real redemption: the worker records requests only for those."""
    from shared import services

    services.credit(deps, user_id, 7)
    token = services.redeem(deps, services.issue(deps, user_id, 7).token.code, "m-1")
    return TokenRedeemed(token_id=token.id, user_id=user_id, points=7, merchant_id="m-1",
                         redeemed_at=token.redeemed_at)


def request_exists(engine, token_id) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM exchange_requests WHERE token_id = :t"),
                            {"t": token_id}).scalar_one() == 1


def test_a_poison_message_is_dead_lettered_at_once_and_only_once(
    settings, topology, broker, start_worker
):
    start_worker(roles=["schedule-expiry", "audit", "expire"], retry_delays=SHORT_RETRIES)
    names = topology.names
    issued_id, cancelled_id = str(uuid.uuid4()), str(uuid.uuid4())
    started = time.monotonic()
    # Given garbage on the events exchange (one type with its own consumer, one only
    # audited), garbage without a message id in the delay chain, and a valid-JSON body that
    # is not a valid event
    publish(broker, names.events_exchange, "TokenIssued", b"not json {", issued_id)
    publish(broker, names.events_exchange, "TokenCancelled", b'{"type": "TokenCancelled"}',
            cancelled_id)
    publish(broker, topology.delayed_exchange, delay_routing_key(0, "expire"), b"\xff\xfe")

    def ours(props, body):
        return props.message_id in (issued_id, cancelled_id) or body == b"\xff\xfe"

    found: list = []
    wait_until(lambda: found.extend(dead_letters(broker, names.dead_letter_queue, ours))
               or len(found) >= 3, timeout=10)
    # Then each reached the parking queue at once, with what ops need to replay it
    assert time.monotonic() - started < 5
    time.sleep(0.5)
    found.extend(dead_letters(broker, names.dead_letter_queue, ours))
    assert len(found) == 3  # no second copy from the audit consumer
    by_id = {p.message_id: p.headers for p, _ in found}
    issued = by_id[issued_id]
    assert issued[h.H_REASON] == "poison"
    assert issued[h.H_ORIGINAL_EXCHANGE] == names.events_exchange
    assert issued[h.H_ORIGINAL_ROUTING_KEY] == "TokenIssued"
    assert issued[h.H_ORIGINAL_QUEUE] == names.consumer_queue("schedule-expiry")
    assert issued[h.H_ATTEMPTS] == 1
    assert "ValidationError" in issued[h.H_EXCEPTION]
    assert datetime.fromisoformat(issued[h.H_DEAD_LETTERED_AT]).tzinfo is not None
    assert by_id[cancelled_id][h.H_ORIGINAL_QUEUE] == names.consumer_queue("audit")
    [timer] = [p for p, b in found if b == b"\xff\xfe"]
    assert timer.message_id  # a dead letter always has an id
    assert timer.headers[h.H_ORIGINAL_EXCHANGE] == topology.delayed_exchange
    assert timer.headers[h.H_ORIGINAL_ROUTING_KEY] == delay_routing_key(0, "expire")


def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered_as_exhausted(
    settings, container, topology, broker, start_worker
):
    start_worker(roles=["exchange-requests"], retry_delays=SHORT_RETRIES)
    names = topology.names
    # Given a valid event the database driver cannot take (a NUL in the merchant id)
    event = TokenRedeemed(token_id=uuid.uuid4(), user_id="u-1", points=7, merchant_id="m\x00",
                          redeemed_at=datetime.now(UTC))
    retries_before = metrics.RETRIES.labels("exchange-requests")._value.get()
    started = time.monotonic()
    publish(broker, names.events_exchange, "TokenRedeemed", event.model_dump_json().encode(),
            str(event.event_id))
    found: list = []
    wait_until(lambda: found.extend(dead_letters(
        broker, names.dead_letter_queue, lambda p, b: p.message_id == str(event.event_id)
    )) or found, timeout=15)
    elapsed = time.monotonic() - started
    [(props, body)] = found
    # Then it was tried 5 times, 4 retries through the delay chain (>= 4 x 0.2 s)...
    assert props.headers[h.H_REASON] == "exhausted"
    assert props.headers[h.H_ATTEMPTS] == 5
    assert "ValueError" in props.headers[h.H_EXCEPTION]
    assert "Traceback" in props.headers[h.H_STACK]
    assert metrics.RETRIES.labels("exchange-requests")._value.get() - retries_before == 4
    assert elapsed >= 0.8
    # ... and it keeps the route of the normal path and its body, for a replay
    assert props.headers[h.H_ORIGINAL_EXCHANGE] == names.events_exchange
    assert props.headers[h.H_ORIGINAL_ROUTING_KEY] == "TokenRedeemed"
    assert json.loads(body)["event_id"] == str(event.event_id)
    assert not any(k.startswith("x-death") for k in props.headers)


@pytest.fixture
def database_proxy(settings):
    proxy = TcpProxy.in_front_of(settings.sqlalchemy_url, 5432)
    proxy.up()
    yield proxy
    proxy.down()


def test_a_database_outage_pauses_the_consumer_without_burning_attempts(
    settings, container, topology, broker, database_proxy
):
    # Given a worker whose database goes away (a real network cut, through a proxy)
    proxied = bootstrap(settings.model_copy(
        update={"database_url": database_proxy.url_for(settings.sqlalchemy_url)}))
    worker = Worker(proxied, WorkerOptions(roles=["exchange-requests"],
                                           retry_delays=SHORT_RETRIES))
    worker.start(topology)
    try:
        database_proxy.down()
        event = redeemed_event(container.deps, f"user-{uuid.uuid4().hex[:8]}")
        retries_before = metrics.RETRIES.labels("exchange-requests")._value.get()
        publish(broker, topology.names.events_exchange, "TokenRedeemed",
                event.model_dump_json().encode(), str(event.event_id))
        # When the outage lasts far longer than 5 attempts at 0.2 s would take
        time.sleep(3)
        # Then no attempt was spent and nothing was dead-lettered...
        assert metrics.RETRIES.labels("exchange-requests")._value.get() == retries_before
        assert dead_letters(broker, topology.names.dead_letter_queue,
                            lambda p, b: p.message_id == str(event.event_id)) == []
        # ... and once the database is back, the held message is handled.
        database_proxy.up()
        wait_until(lambda: request_exists(container.engine, event.token_id), timeout=30)
        assert metrics.RETRIES.labels("exchange-requests")._value.get() == retries_before
    finally:
        worker.stop()
        proxied.close()


def test_a_hung_database_holds_a_worker_no_longer_than_its_bound(
    settings, container, topology, broker, database_proxy
):
    """A database that hangs (stopped, or a network that stalls but still acknowledges)
    answers nothing and closes nothing: no statement timeout, no keepalive fires. The
    worker's engine gives up after the statement timeout plus a margin, so the role is
    not held for ever with its messages unacknowledged, the worker stops in time, and no
    attempt is spent on the outage."""
    proxied = worker_container(settings.model_copy(
        update={"database_url": database_proxy.url_for(settings.sqlalchemy_url)}))
    worker = Worker(proxied, WorkerOptions(roles=["exchange-requests"],
                                           retry_delays=SHORT_RETRIES))
    worker.start(topology)
    stopped = False
    try:
        # Given a worker that handled a message through the proxy (a pooled connection)
        first = redeemed_event(container.deps, f"user-{uuid.uuid4().hex[:8]}")
        publish(broker, topology.names.events_exchange, "TokenRedeemed",
                first.model_dump_json().encode(), str(first.event_id))
        wait_until(lambda: request_exists(container.engine, first.token_id), timeout=30)
        retries_before = metrics.RETRIES.labels("exchange-requests")._value.get()
        # When the database hangs while the next message is being handled
        database_proxy.freeze()
        held = redeemed_event(container.deps, f"user-{uuid.uuid4().hex[:8]}")
        publish(broker, topology.names.events_exchange, "TokenRedeemed",
                held.model_dump_json().encode(), str(held.event_id))
        time.sleep(1)
        # Then the worker still stops within its deadline (unbounded, the role waited on
        # the hung server for ever), without spending an attempt...
        started = time.monotonic()
        assert worker.stop(), "a role was still waiting on the hung database"
        stopped = True
        assert time.monotonic() - started < STOP_TIMEOUT_SECONDS
        assert metrics.RETRIES.labels("exchange-requests")._value.get() == retries_before
        # ... and the message it held was given back: handled once the database answers.
        database_proxy.thaw()
        again = Worker(container, WorkerOptions(roles=["exchange-requests"],
                                                retry_delays=SHORT_RETRIES))
        again.start(topology)
        try:
            wait_until(lambda: request_exists(container.engine, held.token_id), timeout=30)
        finally:
            again.stop()
    finally:
        database_proxy.thaw()
        if not stopped:
            worker.stop()
        proxied.close()


def test_a_failure_after_every_connect_backs_off_instead_of_burning_deliveries(
    settings, container, topology, broker, start_worker, monkeypatch
):
    """Each reconnect requeues the prefetched messages with their delivery count raised.
    A failure that recurs right after connecting must therefore wait longer each time;
    restarting the backoff on every connect reconnected every 0.2 s and the broker
    parked good messages after ten rounds."""
    from workers import consumer
    from workers.backoff import Backoff

    waits: list[float] = []

    class Recording(Backoff):
        def next(self) -> float:
            delay = super().next()
            waits.append(self.current)
            return delay

    def broken(self, channel, publisher, stopping=False):  # type: ignore[no-untyped-def]
        raise OSError("connection broke as the batch was handled")

    monkeypatch.setattr(consumer, "Backoff", Recording)
    monkeypatch.setattr(consumer.ConsumerLoop, "_process_buffer", broken)
    start_worker(roles=["exchange-requests"])
    event = redeemed_event(container.deps, f"user-{uuid.uuid4().hex[:8]}")
    publish(broker, topology.names.events_exchange, "TokenRedeemed",
            event.model_dump_json().encode(), str(event.event_id))
    wait_until(lambda: len(waits) >= 4, timeout=15)
    assert waits[:4] == [0.2, 0.4, 0.8, 1.6]


def test_a_token_someone_holds_delays_only_itself_not_its_batch(
    container, deps, topology, broker, start_worker
):
    """A lock timeout is no outage: the database answered. Taken for one, the expiry
    consumer paused and held its whole batch, retrying it without counting an attempt for
    as long as one token stayed locked, and the other users' refunds waited with it."""
    import dataclasses

    from schemas.events import TokenExpired
    from shared import services
    from shared.persistence.transactions import is_timeout, is_unavailable
    from tests.support.workers import purge_queues, refunds

    short = dataclasses.replace(deps, token_ttl_seconds=1)
    held_user, other_user = (f"user-{uuid.uuid4().hex[:8]}" for _ in range(2))
    tokens = []
    for u in (held_user, other_user):
        services.credit(deps, u, 5)
        tokens.append(services.issue(short, u, 5).token)
    held, other = tokens
    time.sleep(1.2)  # both past their expiry
    purge_queues(broker, topology)  # only these two timers, in the expire queue together
    for t in tokens:
        timer = TokenExpired(token_id=t.id, user_id=t.user_id, points=t.points,
                             expires_at=t.expires_at, restored=False)
        publish(broker, "", topology.names.consumer_queue("expire"),
                timer.model_dump_json().encode(), str(timer.event_id))
    holder = container.engine.connect()
    try:
        holder.execute(text("SELECT id FROM exchange_tokens WHERE id = :id FOR UPDATE"),
                       {"id": held.id})  # as a stuck session would
        start_worker(roles=["expire"], retry_delays=SHORT_RETRIES)
        # The other user's token is refunded while the held one is still locked.
        wait_until(lambda: refunds(container.engine, [other.id])[other.id], timeout=20)
        assert refunds(container.engine, [held.id])[held.id] == []
    finally:
        holder.rollback()
        holder.close()
    # Once released, the held one is refunded too, once (by its retry).
    wait_until(lambda: refunds(container.engine, [held.id])[held.id], timeout=20)
    assert len(refunds(container.engine, [held.id])[held.id]) == 1
    # The classification itself, on a real lock timeout.
    with container.engine.connect() as a, container.engine.connect() as b:
        a.execute(text("SELECT user_id FROM accounts WHERE user_id = :u FOR UPDATE"),
                  {"u": other_user})
        b.execute(text("SET LOCAL lock_timeout = 50"))
        with pytest.raises(Exception) as timed_out:
            b.execute(text("SELECT user_id FROM accounts WHERE user_id = :u FOR UPDATE"),
                      {"u": other_user})
    assert is_timeout(timed_out.value) and not is_unavailable(timed_out.value)
