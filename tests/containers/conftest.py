"""The container tests: the image built once per session, the compose stack up once per
module. Without a Docker engine they skip with one line, except on CI (``CI`` set), where
a missing engine is a failure: CI starts one."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from shared.bootstrap import Container, bootstrap
from shared.persistence import migrate as migrations
from shared.settings import Settings, normalise_database_url
from tests.containers import images
from tests.containers.stack import Stack

IMAGE = "exchange-tokens:test"
STACK_JWT_SECRET = "compose-test-secret-not-for-production-0123456789"  # noqa: S105
TOKEN_TTL_SECONDS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if images.engine_answers():
        return
    if os.environ.get("CI"):
        pytest.fail("no Docker engine answers, and CI must run the container tests")
    pytest.skip("no Docker engine answers: container tests skipped")


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """The service's image, built from deploy/Dockerfile once per test session."""
    images.build(IMAGE)
    return IMAGE


@pytest.fixture(scope="module")
def stack_settings(_servers: tuple[str, str], run_id: str) -> Iterator[Settings]:
    """The stack's own database (created by its migrate container) and namespace."""
    server = make_url(normalise_database_url(_servers[0]))
    url = server.set(database=f"exchange_tokens_compose_{run_id}")
    settings = Settings(
        database_url=url.render_as_string(hide_password=False),
        amqp_url=_servers[1],
        broker_namespace=f"et_compose_{run_id}",
        jwt_secret=STACK_JWT_SECRET,
        app_env="production",
        token_ttl_seconds=TOKEN_TTL_SECONDS,
        log_level="INFO",
    )
    yield settings
    from shared.messaging.topology import delete_topology

    migrations.drop_database(settings.sqlalchemy_url)
    # The broker is shared: once more after a pause if it was away for a moment.
    try:
        delete_topology(settings)
    except Exception:
        time.sleep(10)
        delete_topology(settings)


@pytest.fixture(scope="module")
def stack(image: str, stack_settings: Settings, run_id: str) -> Iterator[Stack]:
    """migrate, api and two workers of deploy/compose.yaml, on the host's network."""
    s = stack_settings
    api_port = free_port()
    stack = Stack(f"et-test-{run_id}", {
        "EXCHANGE_TOKENS_IMAGE": image,
        "DATABASE_URL": s.database_url,
        "AMQP_URL": s.amqp_url,
        "BROKER_NAMESPACE": s.broker_namespace,
        "JWT_SECRET": STACK_JWT_SECRET,
        "APP_ENV": "production",
        "TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS),
        "PORT": str(api_port),
        "LOG_LEVEL": "INFO",
        # Required by the file's postgres and rabbitmq services, which never start here.
        "POSTGRES_PASSWORD": "unused",
        "RABBITMQ_DEFAULT_PASS": "unused",
    })
    stack.api_url = f"http://127.0.0.1:{api_port}"  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def stack_container(stack: Stack, stack_settings: Settings) -> Iterator[Container]:
    """The stack's database and broker, seen from the test (after migrate has run)."""
    c = bootstrap(stack_settings, pool_size=4)
    yield c
    c.close()
