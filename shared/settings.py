"""One typed settings object, built from the environment at start-up and passed in.

Nothing in the project reads ``os.environ`` at import time: entrypoints call
:func:`load_settings` once and hand the object down, so tests can build their own.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.database_hosts import hosts_as_query


class AppEnv(StrEnum):
    production = "production"
    development = "development"


class SettingsError(RuntimeError):
    """Raised with a human-readable message when the environment is unusable."""


def normalise_database_url(url: str) -> str:
    """Accept the contract's plain ``postgresql://`` URL and pin the psycopg2 driver.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which we do not ship.
    """
    url = hosts_as_query(url)  # libpq's "h1:5432,h2:5433" (shared/database_hosts.py)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = "postgresql://localhost:5432/exchange_tokens"
    amqp_url: str = "amqp://guest:guest@localhost:5672/%2F"
    broker_namespace: str = Field(default="exchange_tokens", pattern=r"^[A-Za-z0-9_.\-]{1,100}$")
    jwt_secret: str | None = None
    app_env: AppEnv = AppEnv.production
    token_ttl_seconds: int = Field(default=180, ge=1, le=86400)
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    # Abuse limits (documented in the README).
    max_active_tokens: int = Field(default=10, ge=1, le=100000)
    redeem_failures_per_minute: int = Field(default=30, ge=1, le=100000)
    # API server (gunicorn): processes and threads per process; good defaults for 2 cores.
    web_concurrency: int = Field(default=2, ge=1, le=64)
    web_threads: int = Field(default=6, ge=1, le=64)  # docs/api.md, "Serving": why 6
    # Background roles.
    sweep_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    sweep_batch_size: int = Field(default=500, ge=1, le=100000)
    worker_metrics_port: int = Field(default=9100, ge=0, le=65535)
    # Replicas of each quorum queue, capped by the nodes listed in AMQP_URL (docs/operations.md).
    quorum_initial_group_size: int = Field(default=3, ge=1, le=99)
    # Browser front ends (docs/api.md, "Front ends").
    cors_origins: str = ""  # comma-separated exact origins; empty: no cross-origin access
    web_app_enabled: bool = False  # serve the reference wallet and till under /app/
    web_app_api_url: str = ""  # the API the web app calls; empty: its own origin

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if not parts.scheme.startswith(("postgresql", "postgres")) or not parts.path.strip("/"):
            raise ValueError("must look like postgresql://host:5432/dbname")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: str) -> str:
        for url in value.split(";"):  # the nodes of one cluster (broker_nodes.py)
            parts = urlsplit(url.strip())
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise ValueError("must look like amqp://user:password@host:5672/%2F"
                                 " (several nodes of one cluster separated by ';')")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        for origin in _split_origins(value):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or \
                    parts.path or parts.query or parts.fragment or \
                    origin != f"{parts.scheme}://{parts.netloc}":
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @field_validator("web_app_api_url")
    @classmethod
    def _check_web_app_api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be empty or an http(s) URL like https://api.example.com")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> Settings:
        if not self.jwt_secret:
            if self.app_env is AppEnv.production:
                raise ValueError("JWT_SECRET is required unless APP_ENV=development")
            # Development only: a fixed, loudly insecure key so `make run` works out of the box.
            self.jwt_secret = "development-only-insecure-secret-never-in-production"  # noqa: S105
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return normalise_database_url(self.database_url)

    @property
    def cors_origin_list(self) -> list[str]:
        return _split_origins(self.cors_origins)


def _split_origins(value: str) -> list[str]:
    return [origin.strip() for origin in value.split(",") if origin.strip()]


class OpsSettings(Settings):
    """Settings of the ops commands (cleanup, reconcile, dlq): they sign and check no
    bearer token, so they run without JWT_SECRET, in production too."""

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> OpsSettings:  # overrides the base check
        return self


def load_settings(model: type[Settings] = Settings, **overrides: object) -> Settings:
    """Build settings from the environment; turn validation errors into one clear message."""
    try:
        return model(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
