"""``api``: serve the HTTP API with gunicorn."""

from __future__ import annotations

import os
import shutil
import tempfile

import click

from cli.common import settings_or_exit


def register(group: click.Group) -> None:
    group.add_command(api)


def _enable_multiprocess_metrics() -> str:
    """A fresh directory for the workers' metric files, set before any worker forks.

    prometheus_client chooses how it stores values when it is first imported, so that
    choice is made again here in case something imported it before the variable was set.
    """
    directory = tempfile.mkdtemp(prefix="exchange-tokens-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    return directory


def refuse_a_busy_port(port: int) -> None:
    from api.port_check import PortInUse, ensure_port_free

    try:
        ensure_port_free(port)
    except PortInUse as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
# run-all starts a worker beside the API: its metrics port goes in the API's start line.
@click.option("--worker-metrics-port", type=int, default=None, hidden=True)
def api(worker_metrics_port: int | None) -> None:
    """Serve the API on $PORT (gunicorn: WEB_CONCURRENCY workers of WEB_WORKER, waitress by
    default, each with WEB_THREADS threads). A port another server holds is refused."""
    settings = settings_or_exit()
    refuse_a_busy_port(settings.port)
    directory = _enable_multiprocess_metrics()
    try:
        from api.server import ApiServer

        ApiServer(settings, worker_metrics_port).run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
