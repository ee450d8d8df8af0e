"""Fixtures for the worker tests: the topology, a probe queue on the events exchange, and
workers run as threads of the test process (each role on its own connection)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from shared.messaging.names import Names
from shared.messaging.topology import Topology, declare_topology
from tests.support.workers import (  # noqa: F401 - the tests of this folder import them here
    classify,
    purge_queues,
    refunds,
    unsent_count,
    wait_until,
)


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
