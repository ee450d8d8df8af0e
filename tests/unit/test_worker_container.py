"""The worker process's database pool: a connection for everything its roles hold at once."""

from __future__ import annotations

from shared.settings import Settings
from workers.worker import WorkerOptions, connections_at_once, worker_container


def test_the_pool_covers_every_connection_the_roles_hold_together():
    # Two relays holding two transactions each (claim while awaiting confirms), two expire
    # consumers, schedule-expiry, exchange-requests, the sweep, the monitor and the ops
    # role's job runner and sampler: twelve. Eight,
    # the old size, sent two of them through overflow connections, a new server process
    # per use.
    assert connections_at_once(WorkerOptions()) == 12
    assert connections_at_once(WorkerOptions(relays=3, expire_consumers=1)) == 13
    container = worker_container(Settings(jwt_secret="s3cret",
                                          database_url="postgresql://127.0.0.1:1/none"))
    try:
        assert container.engine.pool.size() == 12
    finally:
        container.close()
