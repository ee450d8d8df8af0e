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


@click.command()
def api() -> None:
    """Serve the API on $PORT (gunicorn, WEB_CONCURRENCY workers x WEB_THREADS threads)."""
    settings = settings_or_exit()
    directory = _enable_multiprocess_metrics()
    try:
        from api.server import ApiServer

        ApiServer(settings).run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
