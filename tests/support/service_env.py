"""The environment a command under test reads its settings from, built in one place."""

from __future__ import annotations

import os

from shared.settings import Settings


def service_env(settings: Settings, *, inherit: bool = False, **overrides: str) -> dict[str, str]:
    """``DATABASE_URL``, ``AMQP_URL``, ``BROKER_NAMESPACE``, ``JWT_SECRET`` and
    ``APP_ENV=development`` from ``settings``, plus ``overrides``. ``inherit``: on top of this
    process's environment (for a subprocess, which needs PATH and the like); a multiprocess
    metrics directory is never inherited, so a spawned API makes its own."""
    env = dict(os.environ) if inherit else {}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DATABASE_URL=settings.database_url,
        AMQP_URL=settings.amqp_url,
        BROKER_NAMESPACE=settings.broker_namespace,
        JWT_SECRET=settings.jwt_secret or "",
        APP_ENV="development",
    )
    env.update(overrides)
    return env
