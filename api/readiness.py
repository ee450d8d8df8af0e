"""``/readyz``: the database and the broker each answer within 2 s, checked in parallel."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pika
from sqlalchemy import Engine, text

from shared.messaging import broker_nodes
from shared.persistence import failover

log = logging.getLogger("exchange_tokens.readiness")

BOUND_SECONDS = 2.0


def database_ok(engine: Engine) -> None:
    """The server answers and takes writes: a demoted primary still answers SELECT 1."""
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 2000"))
        conn.execute(text("SELECT 1"))
        failover.require_writable(conn)


def broker_ok(amqp_url: str) -> None:
    """Some node of the broker accepts a connection (the first that does, of a cluster)."""
    broker_nodes.connect_first(amqp_url, "exchange-tokens readiness", _node_connection,
                               errors=(pika.exceptions.AMQPError, OSError)).close()


def _node_connection(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = BOUND_SECONDS
    params.stack_timeout = BOUND_SECONDS
    params.blocked_connection_timeout = BOUND_SECONDS
    params.connection_attempts = 1
    params.retry_delay = 0
    return pika.BlockingConnection(params)


class Readiness:
    def __init__(self, engine: Engine, amqp_url: str) -> None:
        self.engine, self.amqp_url = engine, amqp_url
        # Threads outlive a check that overran its bound; a small pool caps them.
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")

    def check(self) -> dict[str, str]:
        futures = {
            "database": self.pool.submit(database_ok, self.engine),
            "broker": self.pool.submit(broker_ok, self.amqp_url),
        }
        deadline = time.monotonic() + BOUND_SECONDS
        results = {}
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = "ok"
            except FutureTimeout:
                results[name] = "unavailable"
                log.warning("readiness check timed out", extra={"dependency": name})
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                results[name] = "unavailable"
                log.warning("readiness check failed",
                            extra={"dependency": name, "error": str(exc).splitlines()[0]
                                   if str(exc) else type(exc).__name__})
        return results
