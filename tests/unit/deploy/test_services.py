"""deploy/services.yaml (``make services``): PostgreSQL and RabbitMQ for development,
reachable from this machine only, where the settings' defaults look for them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import Settings
from tests.unit.deploy.conftest import DEPLOY, ROOT


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "services.yaml").read_text(encoding="utf-8"))["services"]


def test_it_runs_exactly_the_two_servers(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "rabbitmq"}


def test_every_published_port_is_bound_to_the_loopback_address(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_the_default_urls_reach_the_published_ports(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("DATABASE_URL", "AMQP_URL"):
        monkeypatch.delenv(variable, raising=False)
    defaults = Settings(jwt_secret="s3cret")
    published = {name: {int(str(p).split(":")[1]) for p in s["ports"]}
                 for name, s in services.items()}
    db, amqp = urlsplit(defaults.database_url), urlsplit(defaults.amqp_url)
    assert (db.port or 5432) in published["postgres"]
    assert db.path.lstrip("/") == services["postgres"]["environment"]["POSTGRES_DB"]
    assert (amqp.port or 5672) in published["rabbitmq"]


def test_the_mounted_broker_files_exist(services: dict[str, Any]) -> None:
    for volume in services["rabbitmq"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), source


def test_make_services_uses_this_file() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-f deploy/services.yaml" in makefile and "\nservices:" in makefile
