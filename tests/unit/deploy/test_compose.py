"""The compose file would bring the whole system up in the right order, and keep it
observable: services, healthchecks, start-up conditions, replicas, volumes, broker config."""

from __future__ import annotations

import re
from typing import Any

from tests.unit.deploy.conftest import APP_SERVICES, DEPLOY

ONE_SHOT = {"migrate"}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_the_compose_file_has_the_database_the_broker_the_migration_the_api_and_the_worker(
    services: dict[str, Any],
) -> None:
    assert {"postgres", "rabbitmq", "migrate", "api", "worker"} <= set(services)


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name


def test_the_migration_is_one_shot_and_waits_for_a_healthy_database_and_broker(
    services: dict[str, Any],
) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert _depends_on(migrate) == {
        "postgres": "service_healthy",
        "rabbitmq": "service_healthy",
    }


def test_the_api_and_worker_start_only_after_a_healthy_database_and_broker_and_a_migration_that_succeeded(
    services: dict[str, Any],
) -> None:
    for name in ("api", "worker"):
        assert _depends_on(services[name]) == {
            "postgres": "service_healthy",
            "rabbitmq": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name


def test_two_workers_run_side_by_side_by_default(services: dict[str, Any]) -> None:
    assert services["worker"]["deploy"]["replicas"] == 2
    # Replicas of one service cannot share a published port.
    assert "ports" not in services["worker"]


def test_the_api_worker_and_migration_are_one_image_built_from_the_deploy_dockerfile(
    services: dict[str, Any],
) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        ).resolve()
    assert services["api"]["command"] == ["api"]
    assert services["worker"]["command"][0] == "worker"


def test_the_api_healthcheck_asks_for_readiness_and_the_workers_for_consumption(
    services: dict[str, Any],
) -> None:
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "/readyz" in api_check
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert "exchange_tokens_worker_consuming" in worker_check
    # The slim image has python, not curl: the checks must not need anything else.
    for check in (api_check, worker_check):
        assert "curl" not in check and "wget" not in check


def test_the_database_and_broker_keep_their_data_in_named_volumes(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    named = set(compose["volumes"])
    for name, target in (("postgres", "/var/lib/postgresql/data"),
                         ("rabbitmq", "/var/lib/rabbitmq")):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts[target] in named, f"{name} data is not in a named volume"


def test_the_broker_has_a_fixed_hostname_so_a_recreated_container_finds_its_data(
    services: dict[str, Any],
) -> None:
    # RabbitMQ names its node rabbit@<hostname> and stores data under that name.
    assert services["rabbitmq"]["hostname"] == "rabbitmq"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert "management" in services["rabbitmq"]["image"]


def test_the_broker_configuration_and_plugins_are_mounted_from_the_repository(
    services: dict[str, Any],
) -> None:
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["rabbitmq"]["volumes"]}
    conf = [source for target, source in mounts.items() if target.startswith("/etc/rabbitmq/conf.d/")]
    assert conf == ["./rabbitmq/rabbitmq.conf"]
    assert mounts["/etc/rabbitmq/enabled_plugins"] == "./rabbitmq/enabled_plugins"
    # The dead-letter forwarder's window: the delay levels' throughput depends on it.
    assert mounts["/etc/rabbitmq/advanced.config"] == "./rabbitmq/advanced.config"
    advanced = (DEPLOY / "rabbitmq" / "advanced.config").read_text()
    assert re.search(r"\{dead_letter_worker_consumer_prefetch,\s*\d+\}", advanced)
    for source in mounts.values():
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), source


def test_the_broker_configuration_pins_the_consumer_timeout_and_the_quorum_defaults() -> None:
    settings = {}
    for line in (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    # Our handlers take milliseconds; the timeout only has to catch a stuck worker, and
    # must stay well above any handler's time (the default has changed across versions).
    assert 60_000 <= int(settings["consumer_timeout"]) <= 1_800_000
    assert settings["default_queue_type"] == "quorum"
    assert int(settings["quorum_queue.initial_cluster_size"]) == 3
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text().strip()
    assert plugins.startswith("[") and plugins.endswith("].")
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= {
        p.strip() for p in plugins[1:-2].split(",")
    }


def test_the_postgres_healthcheck_asks_over_tcp_not_the_socket_of_the_init_server(
    services: dict[str, Any],
) -> None:
    check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in check and "-h 127.0.0.1" in check
    assert services["postgres"]["image"].startswith("postgres:15")


def test_the_observability_services_are_optional(services: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana", "blackbox"):
        assert services[name]["profiles"] == ["observability"], name
    for name in ("postgres", "rabbitmq", *APP_SERVICES):
        assert "profiles" not in services[name], name


def test_every_role_the_compose_file_runs_is_a_command_of_the_console_script(
    services: dict[str, Any],
) -> None:
    from cli import main

    for name in APP_SERVICES:
        command = services[name]["command"][0]
        assert command in main.commands, f"{name} runs `exchange-tokens {command}`, which does not exist"
