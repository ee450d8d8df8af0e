"""The outbox relay on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from schemas.events import TokenIssued
from shared.logs import bound
from shared.messaging.publisher import ConfirmingPublisher
from shared.persistence.outbox import record_events
from tests.support.workers import unsent_count, wait_until
from workers.relay import Relay


def issued_events(n: int) -> list[TokenIssued]:
    return [
        TokenIssued(token_id=uuid.uuid4(), user_id=f"relay-{uuid.uuid4().hex[:6]}", points=5,
                    expires_at=datetime.now(UTC) + timedelta(minutes=3))
        for _ in range(n)
    ]


def record(deps, n: int) -> list[str]:
    events = issued_events(n)
    with deps.session_factory() as session:
        record_events(session, events)
        session.commit()
    return [str(e.event_id) for e in events]


def test_several_relays_at_once_publish_every_row_and_mark_all_published(
    settings, container, deps, topology, probe
):
    # Given 600 events in the outbox and three relays started together
    ids = record(deps, 600)
    relays = [Relay(settings, container.engine, batch_size=100) for _ in range(3)]
    threads = [threading.Thread(target=r.run, daemon=True) for r in relays]
    for t in threads:
        t.start()
    try:
        # Then every row is marked published...
        wait_until(lambda: unsent_count(container.engine) == 0, timeout=30)
    finally:
        for r in relays:
            r.stop()
        for t in threads:
            t.join(10)
    # ... each event reached the exchange at least once, as a persistent JSON message with
    # its event id as message id and its type as routing key ...
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 10
    while not set(ids) <= set(seen) and time.monotonic() < deadline:
        for props, body in probe():
            seen[props.message_id] = seen.get(props.message_id, 0) + 1
            if props.message_id in ids:
                assert props.delivery_mode == 2
                assert props.content_type == "application/json"
                assert props.type == "TokenIssued"
                assert json.loads(body)["event_id"] == props.message_id
    assert set(ids) <= set(seen)
    # ... and SKIP LOCKED kept the relays on disjoint batches: no row went out twice.
    assert [i for i in ids if seen[i] > 1] == []
    assert sum(r.stats.published for r in relays) >= 600


def test_an_idle_relay_publishes_a_new_event_within_a_poll_or_two(
    settings, container, deps, topology, probe
):
    relay = Relay(settings, container.engine)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: unsent_count(container.engine) == 0, timeout=10)
        probe()
        started = time.monotonic()
        with bound(request_id="req-relay-1"):
            [event_id] = record(deps, 1)
        seen: list = []
        wait_until(lambda: seen.extend(p for p, _ in probe() if p.message_id == event_id)
                   or seen, timeout=5, interval=0.005)
        assert time.monotonic() - started < 0.5  # polls every 100 ms
        # The outbox row's headers travel with the message (the worker logs carry them).
        assert seen[0].headers == {"x-request-id": "req-relay-1"}
        assert seen[0].timestamp is not None
    finally:
        relay.stop()
        thread.join(10)


def test_writing_the_outbox_notifies_nobody(container):
    """No NOTIFY in the transactions that record events: PostgreSQL serialises the commits
    of notifying transactions on one cluster-wide lock, each holding it through its WAL
    flush (migration 0005). An event waits for the relay's poll instead."""
    with container.engine.connect() as conn:
        triggers = conn.execute(text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'outbox'::regclass AND NOT tgisinternal"
        )).scalars().all()
        functions = conn.execute(text(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = current_schema() AND p.prosrc ILIKE '%notify%'"
        )).scalars().all()
    assert (triggers, functions) == ([], [])


def test_an_unroutable_event_is_returned_and_its_row_stays_unsent(
    settings, container, deps, topology, broker
):
    # Given a namespace whose events exchange exists but routes to no queue
    lonely = settings.model_copy(update={"broker_namespace": f"{settings.broker_namespace}.lonely"})
    exchange = f"{lonely.broker_namespace}.events"
    broker.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
    try:
        [event_id] = record(deps, 1)
        relay = Relay(lonely, container.engine)
        try:
            relay.drain()
        finally:
            relay._drop_broker()
        # Then the mandatory flag brought it back: the row is still unsent, attempt counted
        with container.engine.connect() as conn:
            row = conn.execute(
                text("SELECT published_at, attempts FROM outbox WHERE event_id = :e"),
                {"e": event_id},
            ).one()
        assert row.published_at is None
        assert row.attempts >= 1
        assert relay.stats.failed >= 1
    finally:
        broker.exchange_delete(exchange)


def test_relay_keeps_rows_while_the_broker_is_unreachable_and_publishes_them_after(
    settings, container, deps, topology, probe
):
    # Given a relay pointed at a port where no broker listens
    ids = record(deps, 20)
    dead = Relay(settings, container.engine, amqp_url="amqp://guest:guest@127.0.0.1:1/%2F")
    thread = threading.Thread(target=dead.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    dead.stop()
    thread.join(10)
    # Then nothing was marked...
    assert unsent_count(container.engine) >= 20
    # ... and a relay that reaches the broker publishes every row.
    relay = Relay(settings, container.engine)
    relay.drain()
    relay._drop_broker()
    seen = {p.message_id for p, _ in probe()}
    assert set(ids) <= seen


def test_a_database_outage_pauses_the_relay_which_then_publishes_what_was_written(
    settings, container, deps, topology, probe, caplog
):
    """The relay's only database path is the engine's pool (no LISTEN connection any
    more): a network cut is reported as the database being away, retried, and survived."""
    from shared.bootstrap import bootstrap
    from tests.support.tcp_proxy import TcpProxy

    proxy = TcpProxy.in_front_of(settings.sqlalchemy_url, 5432)
    proxy.up()
    proxied = bootstrap(settings.model_copy(
        update={"database_url": proxy.url_for(settings.sqlalchemy_url)}))
    relay = Relay(settings, proxied.engine)
    thread = threading.Thread(target=relay.run, daemon=True)
    caplog.set_level("WARNING", logger="exchange_tokens.relay")
    try:
        thread.start()
        wait_until(lambda: unsent_count(container.engine) == 0, timeout=10)
        # Given the relay's database cut off while events are written
        proxy.down()
        ids = record(deps, 5)
        time.sleep(1.5)
        assert thread.is_alive()
        assert unsent_count(container.engine) >= 5
        outage = [r for r in caplog.records if r.name == "exchange_tokens.relay"]
        assert outage and all(r.getMessage() == "database unavailable; relay retries"
                              for r in outage)
        # When it is back, the relay publishes them without being restarted
        proxy.up()
        wait_until(lambda: unsent_count(container.engine) == 0, timeout=30)
        seen = {p.message_id for p, _ in probe()}
        assert set(ids) <= seen
    finally:
        relay.stop()
        thread.join(10)
        proxied.close()
        proxy.down()


def _locked_or_unsent(engine) -> tuple[int, int]:
    """(rows another transaction still holds locked, rows unsent)."""
    with engine.connect() as conn:
        locked = conn.execute(text(
            "SELECT count(*) FROM outbox WHERE id NOT IN"
            " (SELECT id FROM outbox FOR UPDATE SKIP LOCKED)")).scalar_one()
        conn.rollback()
    return locked, unsent_count(engine)


def test_a_failed_batch_leaves_neither_it_nor_the_next_one_locked_or_marked(
    settings, container, deps, topology, monkeypatch
):
    # Given two batches in the outbox: while the broker confirms the first, the second is
    # already claimed and sent in its own transaction.
    record(deps, 20)
    relay = Relay(settings, container.engine, batch_size=10)
    real_wait = ConfirmingPublisher.wait
    calls = []

    def failing_wait(self, sent):  # type: ignore[no-untyped-def]
        calls.append(sent)
        raise ConnectionResetError("the broker went away while confirming")

    monkeypatch.setattr(ConfirmingPublisher, "wait", failing_wait)
    # When the first batch's confirms fail...
    try:
        relay.drain()
    except ConnectionResetError:
        pass
    else:
        raise AssertionError("the failure was swallowed")
    finally:
        relay._drop_broker()
    # Then both batches were rolled back: nothing marked published, no row left locked by
    # an open transaction (which would hide it from every relay until the connection died).
    assert len(calls) == 1  # the first batch's wait; the second was in flight
    assert _locked_or_unsent(container.engine) == (0, 20)
    with container.engine.connect() as conn:
        idle_in_tx = conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle in transaction'")).scalar_one()
    assert idle_in_tx == 0
    # And a relay publishes them all afterwards.
    monkeypatch.setattr(ConfirmingPublisher, "wait", real_wait)
    assert Relay(settings, container.engine, batch_size=10).drain() == 20
    assert unsent_count(container.engine) == 0


def test_an_idle_relay_keeps_its_broker_connection_through_heartbeats(
    settings, container, topology, monkeypatch
):
    # py-amqp counts a heartbeat as received only when it reads one. An idle relay that
    # never read its socket declared the connection dead after two intervals and
    # reconnected, over and over. With a 1 s heartbeat, 5 idle seconds are 5 intervals.
    from shared.messaging import amqp_client

    real_connect = amqp_client.connect
    connections = []

    def short_heartbeat(url, name, heartbeat=amqp_client.HEARTBEAT_SECONDS):  # type: ignore[no-untyped-def]
        connection = real_connect(url, name, heartbeat=1)
        connections.append(connection)
        return connection

    monkeypatch.setattr(amqp_client, "connect", short_heartbeat)
    relay = Relay(settings, container.engine)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: connections, timeout=5)
        time.sleep(5)
        assert len(connections) == 1, "the relay reconnected while idle"
        assert connections[0].connected
    finally:
        relay.stop()
        thread.join(10)


def test_rows_the_broker_keeps_refusing_do_not_hold_back_the_others(
    settings, container, deps, topology
):
    """Twelve rows no queue takes, ahead of a TokenIssued, with batches of five: each
    failed row waits its backoff, so the next polls reach the event behind them (claimed
    oldest first, the failed rows filled every batch and the event never went)."""
    with container.engine.begin() as conn:
        refused = conn.execute(text(
            "INSERT INTO outbox (event_id, event_type, payload)"
            " SELECT gen_random_uuid(), 'NoQueueTakesThis', '{}' FROM generate_series(1, 12)"
            " RETURNING id")).scalars().all()
    [event_id] = record(deps, 1)
    relay = Relay(settings, container.engine, batch_size=5)
    try:
        for _ in range(4):
            relay.drain()
    finally:
        relay._drop_broker()
    with container.engine.connect() as conn:
        published = conn.execute(text("SELECT published_at FROM outbox WHERE event_id = :e"),
                                 {"e": event_id}).scalar_one()
        waiting = conn.execute(text(
            "SELECT count(*) FROM outbox WHERE id = ANY(:ids) AND published_at IS NULL"
            " AND attempts >= 1 AND next_attempt_at > now()"), {"ids": refused}).scalar_one()
        conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": refused})
        conn.commit()
    assert published is not None
    assert waiting == 12  # each refused, kept unsent, and backing off


def test_a_relay_whose_broker_hangs_mid_batch_stops_in_time_and_keeps_its_rows(
    settings, container, deps, topology, probe
):
    """A broker that hangs (stopped, or a network that stalls but still acknowledges)
    sends no confirm and no close-ok. The relay gives up on the confirms soon after it is
    asked to stop, keeps the batch unsent, and closes without waiting for the broker, so
    the worker stops within its deadline; the rows go out once a broker answers."""
    from tests.support.tcp_proxy import TcpProxy
    from workers.worker import STOP_TIMEOUT_SECONDS

    proxy = TcpProxy.in_front_of(settings.amqp_url, 5672)
    proxy.up()
    try:
        # Given a relay that reached the broker through the proxy...
        relay = Relay(settings, container.engine, amqp_url=proxy.url_for(settings.amqp_url))
        thread = threading.Thread(target=relay.run, daemon=True)
        thread.start()
        wait_until(lambda: relay._publisher is not None, timeout=10)
        # ... when the broker hangs, then events are written
        proxy.freeze()
        ids = record(deps, 20)
        wait_until(lambda: _claimed(container.engine, ids), timeout=10)  # sent, unconfirmed
        # Then asked to stop, it stops well within the worker's deadline...
        started = time.monotonic()
        relay.stop()
        thread.join(STOP_TIMEOUT_SECONDS)
        assert not thread.is_alive(), "the relay still waited on the hung broker"
        assert time.monotonic() - started < STOP_TIMEOUT_SECONDS
    finally:
        proxy.thaw()
        proxy.down()
    # ... with every row unsent and unlocked, published by the next relay
    assert not _claimed(container.engine, ids)
    again = Relay(settings, container.engine)
    again.drain()
    again._drop_broker()
    assert set(ids) <= {p.message_id for p, _ in probe()}


def _claimed(engine, ids: list[str]) -> bool:
    """Whether a transaction holds these rows (a relay claimed them and waits)."""
    with engine.connect() as conn:
        free = len(conn.execute(text(
            "SELECT id FROM outbox WHERE event_id = ANY(CAST(:ids AS uuid[]))"
            " AND published_at IS NULL FOR UPDATE SKIP LOCKED"), {"ids": ids}).all())
        conn.rollback()
    return free < len(ids)
