"""Test fixtures: one fresh database and one fresh broker namespace per test session.

Services come from ``DATABASE_URL`` / ``AMQP_URL``, defaulting to the local servers;
testcontainers only when ``TESTS_USE_CONTAINERS=1`` asks for it. A missing service fails
the run with a message saying how to start it: nothing is skipped silently. Everything the
session created (database, exchanges, queues) is removed when it ends.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from shared.bootstrap import Container, bootstrap
from shared.persistence import migrate as migrations
from shared.services.deps import Deps
from shared.settings import Settings, normalise_database_url
from tests.support.clock import FixedClock

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
TEST_JWT_SECRET = "test-secret-please-ignore-32-bytes-or-more"  # noqa: S105

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "RabbitMQ": "cd /var/lib/rabbitmq && su rabbitmq -s /bin/sh -c 'ulimit -n \"$(ulimit -Hn)\""
    " && /usr/lib/rabbitmq/bin/rabbitmq-server -detached'",
}


def _containers_asked_for() -> bool:
    """Testcontainers only on request: a daemon that answers may still have no registry."""
    return os.environ.get("TESTS_USE_CONTAINERS", "") not in ("", "0", "false", "no")


def _require_port(what: str, url: str, default_port: int) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        pytest.exit(
            f"{what} is not answering at {host}:{port} ({exc}). Start it with:\n  "
            f"{HOW_TO_START[what]}\nor point the tests elsewhere with "
            f"{'DATABASE_URL' if what == 'PostgreSQL' else 'AMQP_URL'}.",
            returncode=3,
        )


def _local_servers() -> tuple[str, str]:
    db_url = os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL)
    amqp = os.environ.get("AMQP_URL", LOCAL_AMQP_URL)
    _require_port("PostgreSQL", db_url, 5432)
    _require_port("RabbitMQ", amqp, 5672)
    return db_url, amqp


@pytest.fixture(scope="session")
def _servers() -> Iterator[tuple[str, str]]:
    """(database server URL, broker URL).

    An explicit ``DATABASE_URL`` / ``AMQP_URL`` always wins. Testcontainers is used only
    when ``TESTS_USE_CONTAINERS=1`` asks for it and neither URL is set; if its images
    cannot be pulled (no registry, an air-gapped CI), the run falls back to the local
    servers with one line saying so instead of erroring every test.
    """
    explicit = "DATABASE_URL" in os.environ or "AMQP_URL" in os.environ
    if explicit or not _containers_asked_for():
        yield _local_servers()
        return
    try:
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        pg = PostgresContainer("postgres:15").start()
    except Exception as exc:  # noqa: BLE001 - any failure to get images means: local
        print(f"\ntestcontainers unavailable ({type(exc).__name__}): using the local servers")
        yield _local_servers()
        return
    try:
        mq = RabbitMqContainer("rabbitmq:3.13").start()
    except Exception as exc:  # noqa: BLE001
        pg.stop()
        print(f"\ntestcontainers unavailable ({type(exc).__name__}): using the local servers")
        yield _local_servers()
        return
    try:
        amqp = f"amqp://guest:guest@{mq.get_container_host_ip()}:{mq.get_exposed_port(5672)}/%2F"
        yield pg.get_connection_url(), amqp
    finally:
        mq.stop()
        pg.stop()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def database_url(_servers: tuple[str, str], run_id: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    server = make_url(normalise_database_url(_servers[0]))
    url = server.set(database=f"exchange_tokens_test_{run_id}")
    rendered = url.render_as_string(hide_password=False)
    migrations.ensure_database(rendered)
    migrations.upgrade(rendered)
    yield rendered
    migrations.drop_database(rendered)


@pytest.fixture(scope="session")
def broker_namespace(run_id: str) -> str:
    return f"et_test_{run_id}"


@pytest.fixture(scope="session")
def amqp_url(_servers: tuple[str, str]) -> str:
    return _servers[1]


@pytest.fixture(scope="session")
def settings(database_url: str, amqp_url: str, broker_namespace: str) -> Iterator[Settings]:
    s = Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        broker_namespace=broker_namespace,
        jwt_secret=TEST_JWT_SECRET,
        app_env="development",
        token_ttl_seconds=180,
        log_level="INFO",
    )
    yield s
    # Remove this run's exchanges and queues: leftover quorum queues wedge a small broker.
    try:
        from shared.messaging.topology import delete_topology
    except ImportError:
        return
    delete_topology(s)


@pytest.fixture(scope="session")
def container(settings: Settings) -> Iterator[Container]:
    c = bootstrap(settings, pool_size=10)
    yield c
    c.close()


@pytest.fixture
def deps(container: Container) -> Deps:
    """Services on the database's own clock."""
    return container.deps


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def fixed_deps(container: Container, clock: FixedClock) -> Deps:
    """Services on a clock the test moves by hand."""
    return Deps(
        session_factory=container.deps.session_factory,
        clock=clock,
        token_ttl_seconds=180,
        max_active_tokens=1000,
    )


@pytest.fixture
def user() -> str:
    """A user id no other test uses: tests share one database without seeing each other."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def merchant() -> str:
    return f"merchant-{uuid.uuid4().hex[:8]}"
