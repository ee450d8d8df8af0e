"""Fixtures for the worker tests: the topology, a probe queue on the events exchange, and
workers run as threads of the test process (each role on its own connection)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest
from sqlalchemy import text

from shared.messaging.names import Names
from shared.messaging.topology import Topology, declare_topology


@pytest.fixture(scope="session")
def topology(settings) -> Topology:
    return declare_topology(settings)


@pytest.fixture
def broker(settings) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        yield connection.channel()
    finally:
        with contextlib.suppress(Exception):  # it may have died with a broker restart
            connection.close()


@pytest.fixture
def probe(settings, topology, broker) -> Callable[[], list]:
    """A temporary queue bound to every event: returns a function that reads it."""
    queue = f"{settings.broker_namespace}.probe.{uuid.uuid4().hex[:8]}"
    broker.queue_declare(queue, exclusive=True, auto_delete=True)
    broker.queue_bind(queue, Names(settings.broker_namespace).events_exchange, routing_key="#")

    def read() -> list:
        out = []
        while True:
            method, props, body = broker.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    return read


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
    for queue in [*topo.consumer_queues(), *(topo.delay_queue(k) for k in range(20))]:
        channel.queue_purge(queue)


@pytest.fixture
def start_worker(container, topology, broker):
    """Start in-process workers (threads); every one is stopped when the test ends."""
    from workers.worker import Worker, WorkerOptions

    purge_queues(broker, topology)
    started: list[Worker] = []

    def start(**options) -> Worker:
        worker = Worker(container, WorkerOptions(**options))
        worker.start(topology)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


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
