"""`make services`: PostgreSQL and RabbitMQ for a developer, reachable at the service's
default URLs and from this machine only."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import Settings
from tests.unit.deploy.conftest import DEPLOY, ROOT

FILE = DEPLOY / "dev-services.yaml"


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    return yaml.safe_load(FILE.read_text(encoding="utf-8"))["services"]


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for spec in service["ports"]:
        host, host_port, container_port = spec.split(":")
        out.append((host, int(host_port), int(container_port)))
    return out


def test_every_port_is_published_on_127_0_0_1_only(dev: dict[str, Any]) -> None:
    for name, service in dev.items():
        for host, _, _ in published(service):
            assert host == "127.0.0.1", name


def test_the_servers_answer_at_the_default_urls_of_make_run(dev: dict[str, Any]) -> None:
    defaults = Settings.model_fields
    database = urlsplit(defaults["database_url"].default)
    broker = urlsplit(defaults["amqp_url"].default)
    assert (database.port, 5432) in {(hp, cp) for _, hp, cp in published(dev["postgres"])}
    assert dev["postgres"]["environment"]["POSTGRES_DB"] == database.path.lstrip("/")
    assert dev["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert (broker.port, 5672) in {(hp, cp) for _, hp, cp in published(dev["rabbitmq"])}
    # guest may log in from outside the container's loopback (the port mapping).
    conf = (DEPLOY / "dev-services" / "rabbitmq.conf").read_text()
    assert broker.username == "guest" and "loopback_users = none" in conf


def test_every_mounted_file_exists(dev: dict[str, Any]) -> None:
    for service in dev.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), source


def test_make_services_uses_this_file() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "deploy/dev-services.yaml" in makefile
    assert "\nservices:" in makefile


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose missing")
def test_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "-p", "check", "-f", str(FILE), "config", "-q"],
        capture_output=True, text=True, timeout=60, check=False, cwd=Path(DEPLOY),
    )
    assert result.returncode == 0, result.stderr


def run_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL")}
    return subprocess.run(
        [sys.executable, str(DEPLOY / "dev_services.py")],
        env={**base, **env}, capture_output=True, text=True, timeout=60, check=False,
    )


def test_make_run_goes_on_when_both_servers_answer(tmp_path: Path) -> None:
    # The check asks only whether something accepts a connection: two listening sockets
    # stand in for the servers, so this tier needs none running.
    import socket

    with socket.create_server(("127.0.0.1", 0)) as db, socket.create_server(("127.0.0.1", 0)) as mq:
        result = run_check(
            tmp_path, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{db.getsockname()[1]}/x",
            AMQP_URL=f"amqp://guest:guest@127.0.0.1:{mq.getsockname()[1]}/%2F")
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""


def test_without_servers_or_docker_make_run_stops_with_one_line_saying_what_to_do(
    tmp_path: Path,
) -> None:
    # PATH without docker: the engine cannot be asked. The broker answers (a listening
    # socket), the database does not.
    import socket

    with socket.create_server(("127.0.0.1", 0)) as mq:
        result = run_check(tmp_path, PATH=str(tmp_path),
                           DATABASE_URL="postgresql://postgres@127.0.0.1:1/x",
                           AMQP_URL=f"amqp://guest:guest@127.0.0.1:{mq.getsockname()[1]}/%2F")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DATABASE_URL (127.0.0.1:1)" in lines[0] and "make services" in lines[0]
    assert "AMQP_URL" not in lines[0]
