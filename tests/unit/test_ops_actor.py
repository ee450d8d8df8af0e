"""Who the audit trail names: ``--actor``, then ``EXCHANGE_TOKENS_ACTOR`` (click reads it
into the same option), then the OS account; nobody at all is refused only for a change in
production."""

from __future__ import annotations

import os
import pwd

import click
import pytest

from cli import actor as module
from shared.settings import AppEnv, OpsSettings

PRODUCTION = OpsSettings(app_env=AppEnv.production)
DEVELOPMENT = OpsSettings(app_env=AppEnv.development)


def test_a_given_actor_wins_over_the_os_account():
    assert module.resolve_actor("alice", PRODUCTION, mutating=True) == "alice"


def test_a_blank_actor_falls_back_to_the_os_account_not_to_user(monkeypatch):
    monkeypatch.setenv("USER", "someone-else")
    account = pwd.getpwuid(os.getuid()).pw_name
    assert module.resolve_actor("  ", PRODUCTION, mutating=True) == account


def test_nobody_is_refused_for_a_change_in_production_only(monkeypatch):
    monkeypatch.setattr(module, "os_account", lambda: None)
    with pytest.raises(click.ClickException, match="no actor for the audit trail"):
        module.resolve_actor(None, PRODUCTION, mutating=True)
    assert module.resolve_actor(None, PRODUCTION, mutating=False) == "unknown"
    assert module.resolve_actor(None, DEVELOPMENT, mutating=True) == "unknown"


def test_ops_settings_need_no_jwt_secret_in_production(monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert OpsSettings(app_env=AppEnv.production).jwt_secret is None
