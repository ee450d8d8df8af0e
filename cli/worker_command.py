"""``worker`` (the background roles) and ``run-all`` (the API and one worker, for
``make run``)."""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time

import click

from cli.api_command import refuse_a_busy_port
from cli.common import settings_or_exit
from shared import shutdown
from shared.settings import Settings

log = logging.getLogger("exchange_tokens.cli")

STOP_TIMEOUT_SECONDS = shutdown.SUPERVISOR_KILL_SECONDS  # then what still runs is killed
ROLE_NAMES = ("relay", "schedule-expiry", "expire", "exchange-requests", "audit", "sweep",
              "ops")


def register(group: click.Group) -> None:
    group.add_command(worker)
    group.add_command(run_all)


@click.command()
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLE_NAMES),
              help="Run only this role; repeat for several. Default: every role.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Prometheus metrics port (0 disables); refused if taken. Default: "
                   "WORKER_METRICS_PORT, else the first free of 9100-9109 (logged).")
def worker(roles: tuple[str, ...], metrics_port: int | None) -> None:
    """Run the background roles: outbox relay, expiry scheduling, refunds, exchange
    requests, audit log, the periodic sweep and the ops console's jobs. Several workers may run at once.
    SIGTERM or SIGINT stops it cleanly (in-flight messages finished and acked)."""
    from workers.metrics_port import MetricsPortInUse, serve_metrics
    from workers.worker import Worker, WorkerOptions, worker_container

    settings = settings_or_exit()
    explicit = metrics_port is not None or "worker_metrics_port" in settings.model_fields_set
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    try:
        serve_metrics(port, explicit)
    except MetricsPortInUse as exc:
        raise click.ClickException(str(exc)) from None
    container = worker_container(settings)
    try:
        status = Worker(container, WorkerOptions(roles=roles or ROLE_NAMES)).run_until_signalled()
    finally:
        container.close()
    sys.exit(status)


@click.command("run-all")
def run_all() -> None:
    """Run the API and one worker in the foreground; Ctrl-C or SIGTERM stops both. If
    either dies, the other is stopped and the exit status is non-zero."""
    settings = settings_or_exit()  # fail early on a bad environment, or a busy port
    refuse_a_busy_port(settings.port)
    metrics_port = _worker_metrics_port(settings)
    base = [sys.executable, "-m", "cli"]
    # Each child in its own process group: a terminal's Ctrl-C goes to the foreground
    # group, which is then this process alone, and it forwards one SIGTERM. When the
    # children shared the group, gunicorn got the terminal's SIGINT and then the forwarded
    # one: about one stop in five hung 8-10 s and ended with a worker killed.
    children = {
        # The API's start line names the worker's metrics too.
        "api": _start_child([*base, "api", f"--worker-metrics-port={metrics_port}"]),
        "worker": _start_child([*base, "worker", f"--metrics-port={metrics_port}"]),
    }
    stop_requested_at: float | None = None

    def stop_all(signum: int) -> None:
        nonlocal stop_requested_at
        if stop_requested_at is not None:
            return  # one stop at a time; the deadline below settles the rest
        stop_requested_at = time.monotonic()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # both stop gracefully on SIGTERM

    signal.signal(signal.SIGTERM, lambda signum, frame: stop_all(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stop_all(signum))
    failed = None
    try:
        while any(c.poll() is None for c in children.values()):
            if stop_requested_at is None:
                for name, child in children.items():
                    if child.poll() is not None:
                        failed = name
                        log.error("process exited; stopping the other",
                                  extra={"child": name, "status": child.returncode})
                        stop_all(signal.SIGTERM)
                        break
            elif time.monotonic() - stop_requested_at > STOP_TIMEOUT_SECONDS:
                for child in children.values():
                    if child.poll() is None:
                        child.kill()
            time.sleep(0.1)
    finally:
        for child in children.values():  # whatever happened, leave no orphan behind
            if child.poll() is None:
                child.kill()
                child.wait()

    clean = (0, -signal.SIGINT, -signal.SIGTERM)
    if failed is not None or any(c.returncode not in clean for c in children.values()):
        raise SystemExit(1)


def _worker_metrics_port(settings: Settings) -> int:
    """The worker's metrics port, chosen here so the API's start line can name it: the
    one asked for, else the first free of the defaults (the worker then holds it to it)."""
    from workers.metrics_port import DEFAULT_PORTS

    if settings.worker_metrics_port == 0 or "worker_metrics_port" in settings.model_fields_set:
        return settings.worker_metrics_port
    for port in (*DEFAULT_PORTS, 0):  # 0: any port the system offers, the last resort
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))  # noqa: S104 - where the worker will serve
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise click.ClickException("no port is free for the worker's metrics")


def _start_child(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own command
        argv, process_group=0, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In the child: SIGTERM when run-all dies, even by SIGKILL, since the children are no
    longer in its process group for a group kill to reach them (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
