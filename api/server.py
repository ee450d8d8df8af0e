"""gunicorn, run from Python (no shell string): waitress workers (or gthread), JSON logs, one app per
worker built after the fork, multiprocess Prometheus metrics."""

from __future__ import annotations

import gc
import logging
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from api.startup import announce
from shared.logs import configure_logging
from shared.settings import Settings


class JsonLogger(glogging.Logger):
    """gunicorn's own lines through the project's JSON handler (shared/logs.py), so stderr
    stays one JSON object per line. Access lines come from the app, which knows the
    request id and the user."""

    def setup(self, cfg: Any) -> None:
        configure_logging(cfg.loglevel.upper())
        for logger in (self.error_log, self.access_log):
            logger.handlers[:] = []
            logger.propagate = True
        self.error_log.setLevel(cfg.loglevel.upper())
        self.access_log.disabled = True

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if msg.startswith("Listening at:") and args and not args[0]:
            return  # empty with one socket per worker; api/startup.py says where instead
        super().info(msg, *args, **kwargs)


def _child_exit(_server: Any, worker: Any) -> None:
    # A dead worker's live gauges must not linger in the multiprocess files.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# WEB_WORKER: waitress reads each request whole before a thread of the app sees it, so
# slow or idle connections hold no thread (api/waitress_worker.py); gthread is gunicorn's.
WORKER_CLASSES = {
    "waitress": "api.waitress_worker.WaitressWorker",
    "gthread": "api.gthread_worker.JsonRefusalThreadWorker",
}


class ApiServer(BaseApplication):
    def __init__(self, settings: Settings, worker_metrics_port: int | None = None) -> None:
        self.settings = settings
        self.worker_metrics_port = worker_metrics_port  # named in the start line when given
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options = {
            "bind": f"0.0.0.0:{s.port}",
            "workers": s.web_concurrency,
            "threads": s.web_threads,
            "worker_class": WORKER_CLASSES[s.web_worker],
            "timeout": 30,
            "graceful_timeout": 8,  # SIGTERM: finish in-flight requests, then exit
            "keepalive": 5,
            # One listening socket per worker (SO_REUSEPORT): the kernel spreads new
            # connections over the workers. With one shared socket, whichever worker
            # woke first took them: 16 keep-alive clients all landed on one worker, which
            # its GIL held to one core while the other worker idled.
            "reuse_port": True,
            "loglevel": s.log_level.lower(),
            "logger_class": JsonLogger,
            "accesslog": None,
            "preload_app": False,  # each worker builds its app (and engine) after the fork
            "child_exit": _child_exit,
            "when_ready": lambda _arbiter: announce(s.port, self.worker_metrics_port),
            "proc_name": "exchange-tokens-api",
            # One fixed control socket per user would make two API instances on one host
            # (tests, benchmarks) fight over it; signals are all we need.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            if key in self.cfg.settings:  # control_socket_* exist from gunicorn 25 on
                self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in the worker, after the fork: the engine's connections belong to it alone.
        from api.app import create_app

        app = create_app(self.settings)
        _freeze_long_lived()
        logging.getLogger("exchange_tokens.api").info("worker app ready")
        return app


def _freeze_long_lived() -> None:
    """Hide what lives as long as the worker (modules, the app, its pools: ~94,000
    objects) from the cyclic garbage collector.

    A full collection walks every tracked object while holding the GIL: 65-90 ms under
    load (34 ms idle), every thread of the worker stalled, the two workers often together.
    At half the peak rate one such pause per ten seconds is the p99 (measured: p50 2 ms,
    p99 60 ms). After gc.freeze() a full collection walks only what requests made since
    (2 ms measured), as the gc module's documentation suggests for long-lived processes.
    Collected first, so no garbage is kept forever."""
    gc.collect()
    gc.freeze()
