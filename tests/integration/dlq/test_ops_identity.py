"""Ops commands and who runs them: ``cleanup``, ``reconcile`` and ``dlq`` need no
JWT_SECRET (none of them signs or checks a token), and the audit trail names the actor
from ``--actor``, ``EXCHANGE_TOKENS_ACTOR`` or the OS account, never ``$USER``; a change
made by nobody is refused in production."""

from __future__ import annotations

import json
import os
import pwd
import uuid

import pytest
from click.testing import CliRunner

from cli import main
from tests.integration.dlq.builders import issued
from tests.integration.dlq.test_audit_history import audit_rows
from tests.support.root_logging import kept_root_logging
from tests.support.service_env import service_env

PRODUCTION = {"APP_ENV": "production", "JWT_SECRET": ""}


def run(settings, *args: str, unset: tuple[str, ...] = (), **env: str):
    full = service_env(settings, LOG_LEVEL="INFO", **env)
    with kept_root_logging():
        # CliRunner only adds to the environment; None removes a variable for the run.
        return CliRunner().invoke(main, list(args), env={**full, **dict.fromkeys(unset)})


@pytest.mark.parametrize("command", [
    ["cleanup", "--dry-run"], ["reconcile", "--grace", "86400"], ["dlq", "list"],
    ["dlq", "history"],
])
def test_ops_commands_run_in_production_without_a_jwt_secret(dlq_settings, command):
    result = run(dlq_settings, *command, unset=("JWT_SECRET",), APP_ENV="production")
    assert "JWT_SECRET" not in result.output, result.output
    # reconcile may find other tests' books unbalanced (exit 1); never a settings error (2)
    assert result.exit_code in (0, 1), result.output


def test_the_actor_comes_from_the_option_then_the_environment_then_the_os_account(
    dlq_settings, broker, deps
):
    named = f"ops-{uuid.uuid4().hex[:6]}"
    from_env = f"env-{uuid.uuid4().hex[:6]}"
    first, second, third = (broker.park(issued()) for _ in range(3))

    by_option = run(dlq_settings, "dlq", "purge", "--id", first, "--yes", "--actor", named,
                    EXCHANGE_TOKENS_ACTOR=from_env, USER="someone-else")
    by_env = run(dlq_settings, "dlq", "purge", "--id", second, "--yes",
                 EXCHANGE_TOKENS_ACTOR=from_env, USER="someone-else")
    by_account = run(dlq_settings, "dlq", "purge", "--id", third, "--yes",
                     unset=("EXCHANGE_TOKENS_ACTOR", "USER"))

    assert (by_option.exit_code, by_env.exit_code, by_account.exit_code) == (0, 0, 0)
    assert [r.message_ids for r in audit_rows(deps, named)] == [[first]]
    assert [r.message_ids for r in audit_rows(deps, from_env)] == [[second]]
    account = pwd.getpwuid(os.getuid()).pw_name
    assert [third] in [r.message_ids for r in audit_rows(deps, account)]
    assert audit_rows(deps, "someone-else") == []


def test_a_change_by_nobody_is_refused_in_production_and_a_dry_run_is_not(
    dlq_settings, broker, deps, monkeypatch
):
    def no_account(uid: int):
        raise KeyError(f"getpwuid(): uid not found: {uid}")  # a container's anonymous uid

    monkeypatch.setattr(pwd, "getpwuid", no_account)
    parked = broker.park(issued())
    unset = ("EXCHANGE_TOKENS_ACTOR", "USER", "JWT_SECRET")

    purge = run(dlq_settings, "dlq", "purge", "--id", parked, "--yes", unset=unset,
                APP_ENV="production")
    replay = run(dlq_settings, "dlq", "replay", "--id", parked, unset=unset,
                 APP_ENV="production")
    dry = run(dlq_settings, "dlq", "replay", "--id", parked, "--dry-run", unset=unset,
              APP_ENV="production")

    for refused in (purge, replay):
        assert refused.exit_code == 1
        assert "no actor for the audit trail" in refused.output
        assert "Traceback" not in refused.output
    assert broker.depth() == 1  # nothing purged nor replayed
    assert dry.exit_code == 0, dry.output
    development = run(dlq_settings, "dlq", "purge", "--id", parked, "--yes", unset=unset)
    assert development.exit_code == 0, development.output
    assert broker.depth() == 0


def test_cleanup_and_reconcile_fix_need_an_actor_in_production_and_log_it(
    dlq_settings, monkeypatch
):
    unset = ("EXCHANGE_TOKENS_ACTOR", "USER", "JWT_SECRET")
    named = f"ops-{uuid.uuid4().hex[:6]}"
    cleaned = run(dlq_settings, "cleanup", unset=("USER", "JWT_SECRET"),
                  APP_ENV="production", EXCHANGE_TOKENS_ACTOR=named)
    assert cleaned.exit_code == 0, cleaned.output
    lines = [json.loads(line) for line in cleaned.stderr.splitlines() if line.startswith("{")]
    [ran] = [r for r in lines if r["event"] == "ops command run"]
    assert (ran["command"], ran["actor"]) == ("cleanup", named)

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    for command in (["cleanup"], ["reconcile", "--fix"]):
        refused = run(dlq_settings, *command, unset=unset, APP_ENV="production")
        assert refused.exit_code == 1, refused.output
        assert "no actor for the audit trail" in refused.output
    for command in (["cleanup", "--dry-run"], ["reconcile", "--grace", "86400"]):
        allowed = run(dlq_settings, *command, unset=unset, APP_ENV="production")
        assert allowed.exit_code in (0, 1) and "no actor" not in allowed.output, allowed.output
