"""The ops console's tests run the real thing: the API and the workers as processes, on
PostgreSQL and RabbitMQ, in a broker namespace of their own. Helpers to start them, to sign
tokens, and to put dead letters where the console finds them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import text

from schemas.events import TokenExpired
from shared import jwt_tokens, services
from shared.messaging.names import (
    H_ATTEMPTS,
    H_DEAD_LETTERED_AT,
    H_EXCEPTION,
    H_ORIGINAL_EXCHANGE,
    H_ORIGINAL_QUEUE,
    H_ORIGINAL_ROUTING_KEY,
    H_REASON,
)
from shared.messaging.topology import Topology, delay_routing_key
from shared.services.deps import Deps
from shared.settings import Settings
from tests.support.clock import FixedClock
from tests.support.service_env import service_env

EXE = str(Path(sys.executable).with_name("exchange-tokens"))


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """Processes started for one test; every one is killed (its whole group) at the end."""

    settings: Settings
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        environment = service_env(self.settings, inherit=True, WORKER_METRICS_PORT="0",
                                  LOG_LEVEL="INFO", **env)
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own console script
                [EXE, *args], env=environment, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.procs[name] = proc
        return proc

    def api(self, **env: str) -> str:
        self.port = free_port()
        self.start("api", "api", PORT=str(self.port), WEB_CONCURRENCY="1", WEB_THREADS="4",
                   **env)
        wait_for(lambda: _healthy(self.port), 30, "the API to answer")
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker(self, name: str, *roles: str) -> None:
        args = ["worker", "--metrics-port", "0"]
        for role in roles:
            args += ["--role", role]
        self.start(name, *args)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:  # noqa: S310
            return r.status == 200
    except OSError:
        return False


def token(settings: Settings, sub: str, *roles: str) -> str:
    assert settings.jwt_secret
    return jwt_tokens.encode(settings.jwt_secret, sub, list(roles))


def call(url: str, bearer: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """(status, JSON body) of one request to the API under test."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310
        "Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def expired_tokens(deps: Deps, users: list[str], points: int, per_user: int) -> list[Any]:
    """Tokens issued an hour ago, so due now, still active (no timer ran)."""
    an_hour_ago = Deps(session_factory=deps.session_factory,
                       clock=FixedClock(datetime.now(UTC) - timedelta(hours=1)),
                       max_active_tokens=100_000)
    made = []
    for user in users:
        services.credit(deps, user, points * per_user)
        made += [services.issue(an_hour_ago, user, points).token for _ in range(per_user)]
    return made


def park_timers(channel: Any, topo: Topology, tokens: list[Any],
                exception: str = "RuntimeError: database unavailable") -> list[str]:
    """Park each token's TokenExpired timer as the expire consumer does after its last
    attempt: our headers, back to the delayed exchange with the expire routing key."""
    ids = []
    for t in tokens:
        event = TokenExpired(token_id=t.id, user_id=t.user_id, points=t.points,
                             expires_at=t.expires_at).model_dump(mode="json")
        headers = {
            H_REASON: "exhausted", H_EXCEPTION: exception,
            H_ORIGINAL_EXCHANGE: topo.delayed_exchange,
            H_ORIGINAL_ROUTING_KEY: delay_routing_key(0, "expire"),
            H_ORIGINAL_QUEUE: topo.names.consumer_queue("expire"), H_ATTEMPTS: 5,
            H_DEAD_LETTERED_AT: datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        channel.basic_publish(
            topo.names.dead_letter_exchange, "", json.dumps(event).encode(),
            pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                 message_id=event["event_id"], headers=headers),
            mandatory=True)
        ids.append(event["event_id"])
    return ids


def park_poison(channel: Any, topo: Topology, count: int) -> None:
    """Messages that can never succeed: a body that is not an event."""
    for i in range(count):
        channel.basic_publish(
            topo.names.dead_letter_exchange, "", f"not json {i}".encode(),
            pika.BasicProperties(delivery_mode=2, message_id=f"poison-{i}", headers={
                H_REASON: "poison", H_EXCEPTION: "ValidationError: body is not JSON",
                H_ORIGINAL_EXCHANGE: topo.names.events_exchange,
                H_ORIGINAL_ROUTING_KEY: "TokenIssued", H_ATTEMPTS: 1,
                H_DEAD_LETTERED_AT: datetime.now(UTC).isoformat().replace("+00:00", "Z")}),
            mandatory=True)


def depth(channel: Any, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def close_open_jobs(deps: Deps) -> None:
    """A job a test left open must not be claimed by the next test's worker."""
    with deps.session_factory() as session:
        session.execute(text("UPDATE ops_jobs SET status = 'failed', error = 'test ended'"
                             " WHERE status IN ('queued', 'running')"))
        session.commit()


@contextlib.contextmanager
def broker_channel(settings: Settings) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        connection.close()
