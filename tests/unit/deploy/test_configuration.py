"""The deployment is configured with the published variables under their published names,
from one example env file that the settings accept, and no secret has a default."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.settings import Settings, load_settings
from tests.unit.deploy.conftest import (
    APP_SERVICES,
    CONTAINER_VARIABLES,
    CONTRACT_VARIABLES,
    DEPLOY,
    TUNABLES,
)

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolations() -> list[tuple[str, str, str]]:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    return [(m.group(1), m.group(2) or "", m.group(3) or "") for m in INTERPOLATION.finditer(text)]


def test_the_service_containers_get_exactly_the_contract_variables_and_the_tunables(
    services: dict[str, Any],
) -> None:
    expected = CONTRACT_VARIABLES | TUNABLES
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) == expected, name
        # Same name on both sides: the container variable comes from the .env variable of
        # that very name, never a renamed one.
        for key, value in environment.items():
            assert re.fullmatch(rf"\$\{{{key}(:?[-?][^}}]*)?\}}", str(value)), (key, value)


def test_every_tunable_is_a_setting_of_the_service() -> None:
    settings_names = {name.upper() for name in Settings.model_fields}
    assert CONTRACT_VARIABLES | TUNABLES <= settings_names


def test_every_contract_variable_is_in_the_example_env_file(env_example: dict[str, str]) -> None:
    assert CONTRACT_VARIABLES <= set(env_example)
    assert TUNABLES <= set(env_example)


def test_the_example_env_file_holds_only_service_settings_and_container_variables(
    env_example: dict[str, str],
) -> None:
    assert set(env_example) <= CONTRACT_VARIABLES | TUNABLES | CONTAINER_VARIABLES


def test_every_variable_the_compose_file_reads_is_in_the_example_env_file(
    env_example: dict[str, str],
) -> None:
    read = {name for name, _, _ in _interpolations()}
    assert read <= set(env_example), read - set(env_example)


def test_the_jwt_secret_has_no_default_and_the_example_leaves_it_to_be_replaced(
    env_example: dict[str, str],
) -> None:
    uses = [(op, rest) for name, op, rest in _interpolations() if name == "JWT_SECRET"]
    assert uses and all(op == ":?" for op, _ in uses), uses
    # Empty in the example: `docker compose up` stops with the message until it is set.
    assert env_example["JWT_SECRET"] == ""


def test_every_required_value_except_the_secret_is_filled_in_the_example(
    env_example: dict[str, str],
) -> None:
    for name, op, _ in _interpolations():
        if op == ":?" and name != "JWT_SECRET":
            assert env_example[name], f"{name} is required by compose.yaml but empty"


def test_the_compose_defaults_are_the_contract_defaults(env_example: dict[str, str]) -> None:
    for name, op, default in _interpolations():
        if op == ":-" and name in env_example and env_example[name]:
            assert default == env_example[name], (name, default, env_example[name])


def test_the_settings_accept_the_example_configuration_once_a_secret_is_set(
    env_example: dict[str, str],
) -> None:
    values = {k.lower(): v for k, v in env_example.items()
              if k in CONTRACT_VARIABLES | TUNABLES}
    values["jwt_secret"] = "a-real-secret-of-enough-length-for-hs256-0123456789"
    settings = load_settings(**values)
    assert settings.app_env == "production"
    assert urlsplit(settings.database_url).hostname == "postgres"
    assert urlsplit(settings.amqp_url).hostname == "rabbitmq"
    assert settings.port == 8000
    assert settings.worker_metrics_port == 9100


def test_the_example_urls_carry_the_credentials_the_containers_are_created_with(
    env_example: dict[str, str],
) -> None:
    db = urlsplit(env_example["DATABASE_URL"])
    assert (db.username, unquote(db.password or "")) == (
        env_example["POSTGRES_USER"], env_example["POSTGRES_PASSWORD"])
    assert db.path == "/exchange_tokens"
    amqp = urlsplit(env_example["AMQP_URL"])
    assert (amqp.username, unquote(amqp.password or "")) == (
        env_example["RABBITMQ_DEFAULT_USER"], env_example["RABBITMQ_DEFAULT_PASS"])


def test_the_real_env_file_is_neither_committed_nor_sent_to_the_image_build() -> None:
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert "**/.env" in ignored
