"""Settings are read from the environment once, at start-up, and bad values refuse to
start with a message naming the variable (README, "Configuration")."""

from __future__ import annotations

import pytest

from shared.settings import AppEnv, SettingsError, load_settings, normalise_database_url

CONTRACT_VARIABLES = (
    "DATABASE_URL", "AMQP_URL", "BROKER_NAMESPACE", "JWT_SECRET", "APP_ENV",
    "TOKEN_TTL_SECONDS", "PORT", "LOG_LEVEL",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment: only what each test sets is seen."""
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_contracts_when_only_a_secret_is_given(env):
    env.setenv("JWT_SECRET", "s3cret")
    s = load_settings()
    assert s.database_url == "postgresql://localhost:5432/exchange_tokens"
    assert s.amqp_url == "amqp://guest:guest@localhost:5672/%2F"
    assert s.broker_namespace == "exchange_tokens"
    assert s.app_env is AppEnv.production
    assert (s.token_ttl_seconds, s.port, s.log_level) == (180, 8000, "INFO")


def test_values_come_from_the_environment(env):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("TOKEN_TTL_SECONDS", "86400")
    env.setenv("PORT", "9000")
    env.setenv("BROKER_NAMESPACE", "staging")
    s = load_settings()
    assert (s.token_ttl_seconds, s.port, s.broker_namespace) == (86400, 9000, "staging")


@pytest.mark.parametrize("ttl", ["0", "86401", "-5", "soon"])
def test_a_token_ttl_outside_1_to_86400_refuses_to_start(env, ttl):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("TOKEN_TTL_SECONDS", ttl)
    with pytest.raises(SettingsError, match="TOKEN_TTL_SECONDS"):
        load_settings()


def test_the_smallest_ttl_is_accepted(env):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("TOKEN_TTL_SECONDS", "1")
    assert load_settings().token_ttl_seconds == 1


@pytest.mark.parametrize(
    "url", ["mysql://localhost/db", "postgresql://localhost:5432/", "not a url"]
)
def test_a_malformed_database_url_refuses_to_start(env, url):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("DATABASE_URL", url)
    with pytest.raises(SettingsError, match="DATABASE_URL.*postgresql://host:5432/dbname"):
        load_settings()


@pytest.mark.parametrize("url", ["http://localhost:5672/", "amqp:///%2F", "localhost:5672"])
def test_a_malformed_amqp_url_refuses_to_start(env, url):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("AMQP_URL", url)
    with pytest.raises(SettingsError, match="AMQP_URL"):
        load_settings()


def test_production_without_a_jwt_secret_refuses_to_start(env):
    with pytest.raises(SettingsError, match="JWT_SECRET is required"):
        load_settings()
    env.setenv("APP_ENV", "production")
    env.setenv("JWT_SECRET", "")
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load_settings()


def test_development_starts_without_a_jwt_secret(env):
    env.setenv("APP_ENV", "development")
    s = load_settings()
    assert s.app_env is AppEnv.development
    assert s.jwt_secret  # a fixed development key, never None


def test_an_unknown_app_env_refuses_to_start(env):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("APP_ENV", "staging")
    with pytest.raises(SettingsError, match="APP_ENV"):
        load_settings()


def test_the_message_lists_every_bad_variable_at_once(env):
    env.setenv("TOKEN_TTL_SECONDS", "0")
    env.setenv("AMQP_URL", "http://x")
    env.setenv("JWT_SECRET", "s3cret")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert message.startswith("invalid configuration")
    assert "TOKEN_TTL_SECONDS" in message and "AMQP_URL" in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg2://u:p@h:5432/d"),
        ("postgres://h/d", "postgresql+psycopg2://h/d"),
        ("postgresql+psycopg2://h/d", "postgresql+psycopg2://h/d"),
    ],
)
def test_a_plain_postgresql_url_is_pinned_to_psycopg2(given, expected):
    assert normalise_database_url(given) == expected


def test_the_engine_url_is_normalised_but_the_configured_one_kept(env):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("DATABASE_URL", "postgresql://db.internal:5432/tokens")
    s = load_settings()
    assert s.database_url == "postgresql://db.internal:5432/tokens"
    assert s.sqlalchemy_url == "postgresql+psycopg2://db.internal:5432/tokens"


def test_log_level_is_case_insensitive_and_validated(env):
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
    env.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        load_settings()


def test_nothing_is_read_at_import_time(env):
    """Two loads see two environments: settings are built when asked, not cached."""
    env.setenv("JWT_SECRET", "s3cret")
    env.setenv("PORT", "8001")
    first = load_settings()
    env.setenv("PORT", "8002")
    assert (first.port, load_settings().port) == (8001, 8002)
