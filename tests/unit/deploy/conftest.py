"""What the deployment tests read: the compose file, the example env file, the Dockerfile,
the service's configuration variables and the metric names documented for the dashboards.

No Docker engine runs where the tests run, so the files are checked for their structure
and their agreement with the published configuration and the code, and the healthcheck commands are run
for real against local HTTP servers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"

# The service's published Configuration table (environment variables), by name. The
# deployment must pass exactly these, plus the tunables below, to the service containers.
CONTRACT_VARIABLES = frozenset({
    "DATABASE_URL", "AMQP_URL", "BROKER_NAMESPACE", "JWT_SECRET", "APP_ENV",
    "TOKEN_TTL_SECONDS", "PORT", "LOG_LEVEL", "CORS_ORIGINS", "WORKER_METRICS_PORT",
})
# The service's own tunables that the deployment sets (names of shared/settings.py).
TUNABLES = frozenset({
    "MAX_ACTIVE_TOKENS", "REDEEM_FAILURES_PER_MINUTE", "WEB_CONCURRENCY", "WEB_THREADS",
    "WORKER_METRICS_PORT", "QUORUM_INITIAL_GROUP_SIZE", "WEB_APP_ENABLED", "WEB_APP_API_URL",
})
# Variables of the third-party containers, which the service never reads.
CONTAINER_VARIABLES = frozenset({
    "POSTGRES_USER", "POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS",
    "GRAFANA_ADMIN_PASSWORD",
})
APP_SERVICES = ("migrate", "api", "worker")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        assert key not in values, f"{key} set twice"
        values[key.strip()] = value.strip()
    return values


def documented_metrics() -> dict[str, str]:
    """Metric name → type, from the tables of docs/observability.md (first column in
    backticks, second column the type for our own metrics)."""
    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    metrics: dict[str, str] = {}
    for match in re.finditer(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*([^|]*)\|", text,
                             flags=re.MULTILINE):
        name, kind = match.group(1), match.group(2).strip()
        metrics[name] = kind if kind in ("counter", "gauge", "histogram") else "external"
    return metrics


def queryable_series(metrics: dict[str, str]) -> frozenset[str]:
    """Every series name a query may read: a histogram through _bucket, _sum, _count."""
    names = set()
    for name, kind in metrics.items():
        if kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(name)
    return frozenset(names)


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return read_env_file(DEPLOY / ".env.example")
