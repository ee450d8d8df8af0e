"""Fixtures of the dead-letter console tests: a broker namespace of their own (so other
tests that park messages in the same session cannot mix with ours), an empty parking queue
per test, and a helper that parks messages the way the workers and the broker do."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import pytest
from click.testing import CliRunner, Result

from cli import main
from shared.messaging.names import (
    H_ATTEMPTS,
    H_DEAD_LETTERED_AT,
    H_EXCEPTION,
    H_ORIGINAL_EXCHANGE,
    H_ORIGINAL_QUEUE,
    H_ORIGINAL_ROUTING_KEY,
    H_REASON,
    H_STACK,
)
from shared.messaging.topology import (
    DELIVERY_LIMIT,
    Topology,
)
from shared.settings import Settings
from tests.support.namespaces import namespace_of_its_own
from tests.support.root_logging import kept_root_logging
from tests.support.service_env import service_env


@pytest.fixture(scope="session")
def dlq_settings(settings: Settings) -> Iterator[Settings]:
    yield from namespace_of_its_own(settings, "dlq")


@pytest.fixture(scope="session")
def topology(dlq_settings: Settings) -> Topology:
    return Topology.for_settings(dlq_settings)


@dataclass
class Broker:
    """A test's handle on the broker: park messages, count them, watch where replays go."""

    channel: pika.adapters.blocking_connection.BlockingChannel
    topo: Topology
    probes: list[str]

    @property
    def parking(self) -> str:
        return self.topo.names.dead_letter_queue

    def depth(self, queue: str | None = None) -> int:
        ok = self.channel.queue_declare(queue or self.parking, passive=True)
        return int(ok.method.message_count)

    def park(
        self,
        body: bytes | dict[str, Any],
        *,
        reason: str = "exhausted",
        exception: str | None = "RuntimeError: database unavailable",
        exchange: str | None = None,
        routing_key: str | None = None,
        queue: str = "exchange-requests",
        attempts: int = 5,
        message_id: str | None = None,
    ) -> str | None:
        """Dead-letter a message the way our workers do: publish to ``<ns>.dead-letter``
        with our headers. Returns its message_id (the event id by default)."""
        if isinstance(body, dict):
            message_id = message_id or body.get("event_id")
            raw = json.dumps(body).encode()
        else:
            raw = body
        headers: dict[str, Any] = {
            H_REASON: reason,
            H_ORIGINAL_EXCHANGE: self.topo.names.events_exchange if exchange is None else exchange,
            H_ORIGINAL_ROUTING_KEY: routing_key or (body.get("type") if isinstance(body, dict)
                                                    else "TokenIssued"),
            H_ORIGINAL_QUEUE: self.topo.names.consumer_queue(queue),
            H_ATTEMPTS: attempts,
            H_DEAD_LETTERED_AT: datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if exception is not None:
            headers[H_EXCEPTION] = exception
            headers[H_STACK] = (
                'Traceback (most recent call last):\n  File "workers/consume.py", line 1\n'
                + exception
            )
        self.channel.basic_publish(
            self.topo.names.dead_letter_exchange, "", raw,
            pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                 message_id=message_id, headers=headers),
            mandatory=True,
        )
        return message_id

    def park_by_broker(
        self,
        event: dict[str, Any],
        *,
        exchange: str | None = None,
        routing_key: str | None = None,
        consumer: str = "exchange-requests",
    ) -> None:
        """Let RabbitMQ itself dead-letter an event: publish it (without message_id, by
        default to the events exchange), then reject it from the consumer's quorum queue
        until its delivery limit is exceeded. The parked copy carries only the broker's
        x-death."""
        queue = self.topo.names.consumer_queue(consumer)
        self.channel.basic_publish(
            exchange or self.topo.names.events_exchange, routing_key or event["type"],
            json.dumps(event).encode(),
            pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            mandatory=True,
        )
        before = self.depth()
        rejected, deadline = 0, time.monotonic() + 10
        while rejected <= DELIVERY_LIMIT and time.monotonic() < deadline:
            method, _props, _body = self.channel.basic_get(queue, auto_ack=False)
            if method is None:  # still on its way (through the delay chain, say)
                self.channel.connection.sleep(0.05)
                continue
            self.channel.basic_nack(method.delivery_tag, requeue=True)
            rejected += 1
        for _ in range(50):  # at-least-once dead-lettering completes asynchronously
            if self.depth() > before:
                return
            self.channel.connection.sleep(0.1)
        raise AssertionError("the broker did not dead-letter the message")

    def probe(self, exchange: str, routing_key: str) -> str:
        """A temporary classic queue bound where a replay should land."""
        name = f"{self.topo.names.namespace}.probe.{uuid.uuid4().hex[:8]}"
        self.channel.queue_declare(name, arguments={"x-queue-type": "classic"})
        self.channel.queue_bind(name, exchange, routing_key=routing_key)
        self.probes.append(name)
        return name

    def drain(self, queue: str) -> list[tuple[pika.spec.BasicProperties, bytes]]:
        out = []
        while True:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))


@pytest.fixture
def broker(dlq_settings: Settings, topology: Topology) -> Iterator[Broker]:
    connection = pika.BlockingConnection(pika.URLParameters(dlq_settings.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    # Every test starts from empty queues of this namespace.
    for queue in (topology.names.dead_letter_queue, *topology.consumer_queues()):
        channel.queue_purge(queue)
    b = Broker(channel, topology, [])
    try:
        yield b
    finally:
        for name in b.probes:
            channel.queue_delete(name)
        connection.close()


@dataclass
class Cli:
    settings: Settings

    def __call__(self, *args: str, input: str | None = None, user: str = "night-shift",
                 **overrides: str) -> Result:
        env = service_env(self.settings, EXCHANGE_TOKENS_ACTOR=user, LOG_LEVEL="INFO",
                          **overrides)
        with kept_root_logging():
            return CliRunner().invoke(main, ["dlq", *args], env=env, input=input,
                                      catch_exceptions=False)


@pytest.fixture
def cli(dlq_settings: Settings) -> Cli:
    return Cli(dlq_settings)
