"""``worker`` (the background roles) and ``run-all`` (the API and one worker, for
``make run``)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

import click

from shared.bootstrap import bootstrap
from shared.cli.common import settings_or_exit

log = logging.getLogger("exchange_tokens.cli")

ROLE_NAMES = ("relay", "schedule-expiry", "expire", "exchange-requests", "audit", "sweep")


def register(group: click.Group) -> None:
    group.add_command(worker)
    group.add_command(run_all)


@click.command()
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLE_NAMES),
              help="Run only this role; repeat for several. Default: every role.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Prometheus metrics port (0 disables). Default: WORKER_METRICS_PORT or 9100.")
def worker(roles: tuple[str, ...], metrics_port: int | None) -> None:
    """Run the background roles: outbox relay, expiry scheduling, refunds, exchange
    requests, audit log and the periodic sweep. Several workers may run at once.
    SIGTERM or SIGINT stops it cleanly (in-flight messages finished and acked)."""
    from workers import metrics
    from workers.worker import Worker, WorkerOptions

    settings = settings_or_exit()
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    metrics.serve(port)
    container = bootstrap(settings, pool_size=8)
    try:
        status = Worker(container, WorkerOptions(roles=roles or ROLE_NAMES)).run_until_signalled()
    finally:
        container.close()
    sys.exit(status)


@click.command("run-all")
def run_all() -> None:
    """Run the API and one worker in the foreground; Ctrl-C or SIGTERM stops both. If
    either dies, the other is stopped and the exit status is non-zero."""
    settings_or_exit()  # fail early on a bad environment
    base = [sys.executable, "-m", "shared.cli"]
    children = {
        "api": subprocess.Popen([*base, "api"]),  # noqa: S603 - our own command
        "worker": subprocess.Popen([*base, "worker"]),  # noqa: S603
    }
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = None
    while any(c.poll() is None for c in children.values()):
        for name, child in children.items():
            if child.poll() is not None and not stopping:
                failed = name
                log.error("process exited; stopping the other",
                          extra={"process": name, "status": child.returncode})
                stopping = True
                for other in children.values():
                    if other.poll() is None:
                        other.terminate()
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    codes = {name: c.returncode for name, c in children.items()}
    if failed is not None or any(code not in (0, -signal.SIGINT, -signal.SIGTERM)
                                 for code in codes.values()):
        raise SystemExit(1)
