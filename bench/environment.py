"""The throwaway world a run measures in: its own database and broker namespace, created
at the start and removed at the end, whatever happens in between."""

from __future__ import annotations

import os
import platform
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg2
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy.engine import make_url

from bench.seed import create_bench_tables
from shared.messaging.topology import Topology, connect, declare_topology, delete_topology
from shared.persistence import migrate as migrations
from shared.settings import Settings, normalise_database_url

# The same local defaults as the tests (tests/conftest.py).
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass
class BenchEnv:
    settings: Settings
    database_url: str  # plain libpq URL of the throwaway database (for psycopg2)
    run_id: str
    database_name: str
    extra_queues: list[str]  # queues the baselines declared outside the topology

    def connect(self, autocommit: bool = False) -> Any:
        conn = psycopg2.connect(self.database_url)
        conn.autocommit = autocommit
        return conn

    def child_env(self, **overrides: object) -> dict[str, str]:
        """Environment of a subprocess (API, worker) pointed at this run's world."""
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url,
            "AMQP_URL": self.settings.amqp_url,
            "BROKER_NAMESPACE": self.settings.broker_namespace,
            "JWT_SECRET": self.settings.jwt_secret or "",
            "APP_ENV": "production",
        })
        env.update({k.upper(): str(v) for k, v in overrides.items()})
        return env


@contextmanager
def throwaway_world() -> Iterator[BenchEnv]:
    """Create a fresh migrated database and broker namespace; remove both on exit, also on
    failure or Ctrl-C (leftover quorum queues wedge a small broker)."""
    run_id = uuid.uuid4().hex[:10]
    server = make_url(normalise_database_url(os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL)))
    url = server.set(database=f"exchange_tokens_bench_{run_id}")
    sqlalchemy_url = url.render_as_string(hide_password=False)
    settings = Settings(
        database_url=sqlalchemy_url,
        amqp_url=os.environ.get("AMQP_URL", LOCAL_AMQP_URL),
        broker_namespace=f"et_bench_{run_id}",
        jwt_secret=secrets.token_urlsafe(32),
        app_env="production",
    )
    env = BenchEnv(
        settings=settings,
        database_url=url.set(drivername="postgresql").render_as_string(hide_password=False),
        run_id=run_id,
        database_name=str(url.database),
        extra_queues=[],
    )
    try:
        _prepare_database(env)
        declare_topology(settings)
        yield env
    finally:
        _remove_broker_objects(env)
        migrations.drop_database(sqlalchemy_url)


def _prepare_database(env: BenchEnv) -> None:
    """Create and migrate the database, plus the bench's own side table."""
    migrations.ensure_database(env.settings.sqlalchemy_url)
    migrations.upgrade(env.settings.sqlalchemy_url)
    conn = env.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            create_bench_tables(cur)
    finally:
        conn.close()


@contextmanager
def sibling_database(env: BenchEnv, suffix: str) -> Iterator[BenchEnv]:
    """A second migrated database beside the run's own (same server, same broker
    namespace), dropped on exit: lets a benchmark compare two table sizes side by side."""
    main = make_url(env.settings.sqlalchemy_url)
    url = main.set(database=f"{main.database}_{suffix}")
    sqlalchemy_url = url.render_as_string(hide_password=False)
    sibling = BenchEnv(
        settings=env.settings.model_copy(update={"database_url": sqlalchemy_url}),
        database_url=url.set(drivername="postgresql").render_as_string(hide_password=False),
        run_id=env.run_id,
        database_name=str(url.database),
        extra_queues=[],
    )
    try:
        _prepare_database(sibling)
        yield sibling
    finally:
        migrations.drop_database(sqlalchemy_url)


def reset(env: BenchEnv) -> None:
    """Empty tables and queues between benchmarks: what one left behind (unsent outbox rows,
    unconsumed audit messages, tokens that would expire later) must not load the next.
    TRUNCATE is not UPDATE or DELETE, so the ledger's append-only trigger does not fire;
    this is the run's own throwaway database."""
    conn = env.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE exchange_tokens, ledger, accounts, outbox, exchange_requests,"
                        " processed_messages, idempotency_keys, bench_expiry")
    finally:
        conn.close()
    connection = connect(env.settings, name="bench reset")
    try:
        channel = connection.channel()
        topo = Topology.for_settings(env.settings)
        # The run's own lifetime queue exists only if a worker with the run's lifetime
        # scheduled a timer; the lateness benchmark's is among the extra queues.
        own = [q for q in topo.queues() if q != topo.lifetime_queue]
        for queue in [*own, *env.extra_queues]:
            try:
                channel.queue_purge(queue)
            except ChannelClosedByBroker:  # not declared (yet): a lifetime queue, say
                channel = connection.channel()
    finally:
        connection.close()


def _remove_broker_objects(env: BenchEnv) -> None:
    try:
        delete_topology(env.settings)
    finally:
        if env.extra_queues:
            connection = connect(env.settings, name="bench cleanup")
            try:
                channel = connection.channel()
                for queue in env.extra_queues:
                    channel.queue_delete(queue)
            finally:
                connection.close()


def machine_info(env: BenchEnv) -> dict[str, Any]:
    conn = env.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            postgres = cur.fetchone()[0]
    finally:
        conn.close()
    connection = connect(env.settings, name="bench version")
    try:
        props = connection._impl.server_properties  # what the broker announced at connect
        rabbitmq = props.get("version", b"?")
        rabbitmq = rabbitmq.decode() if isinstance(rabbitmq, bytes) else str(rabbitmq)
    finally:
        connection.close()
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_total_mb = None
    try:
        with open("/proc/meminfo") as f:
            mem_total_mb = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mb": mem_total_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": postgres,
        "rabbitmq": rabbitmq,
        "pika": pika.__version__,
    }
