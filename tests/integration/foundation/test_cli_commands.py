"""The ops commands, run as ops run them: ``cleanup`` and ``migrate`` through the click
entry point (and, for two copies at once, as real processes of the console script).

They act on a whole database, so each test here gets a throwaway one: what they print
and change is then exactly what the test set up, whatever else the suite is doing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from cli import main
from shared import jwt_tokens, services
from shared.bootstrap import Container, bootstrap
from shared.services.views import TokenView
from shared.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.integration.foundation.books import assert_books_balance
from tests.integration.foundation.scratch import drop_database, scratch_database, scratch_url
from tests.support.clock import FixedClock
from tests.support.root_logging import kept_root_logging
from tests.support.service_env import service_env

pytestmark = pytest.mark.timeout(120)

CONSOLE_SCRIPT = Path(sys.executable).parent / "exchange-tokens"


@pytest.fixture(autouse=True)
def _keep_test_logging() -> Iterator[None]:
    with kept_root_logging():
        yield


@pytest.fixture
def scratch(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "cli") as url:
        yield url


@pytest.fixture
def scratch_container(settings: Settings, scratch: str) -> Iterator[Container]:
    c = bootstrap(settings.model_copy(update={"database_url": scratch}), pool_size=5)
    yield c
    c.close()


def env_for(settings: Settings, database_url: str) -> dict[str, str]:
    return service_env(settings, DATABASE_URL=database_url, LOG_LEVEL="INFO")


def run_cli(settings: Settings, database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env_for(settings, database_url))


def expired_tokens(container: Container, users: list[str], points: list[int]) -> list[TokenView]:
    """Tokens issued an hour ago (a clock set back): past their expiry on the database's
    clock, as if every timer had been lost."""
    past = replace(
        container.deps,
        clock=FixedClock(datetime.now(UTC) - timedelta(hours=1)),
        max_active_tokens=10_000,
    )
    for user in set(users):
        services.credit(past, user, sum(p for u, p in zip(users, points, strict=True)
                                        if u == user))
    return [services.issue(past, u, p).token for u, p in zip(users, points, strict=True)]


def table_rows(output: str) -> list[list[str]]:
    """The rows of the command's table (after the header and its rule)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("token_id")) + 2
    return [line.split() for line in lines[start:] if line and not line.startswith(("restored",
                                                                                   "would"))]


def test_cleanup_dry_run_lists_what_it_would_restore_and_changes_nothing(
    settings, scratch, scratch_container
):
    deps = scratch_container.deps
    users = [f"dry-{i}" for i in range(3)]
    tokens = expired_tokens(scratch_container, users, [5, 7, 11])
    with deps.session_factory() as s:
        outbox_before = s.execute(text("SELECT count(*) FROM outbox")).scalar_one()

    result = run_cli(settings, scratch, "cleanup", "--dry-run")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert sorted(r[0] for r in rows) == sorted(str(t.id) for t in tokens)
    assert result.stdout.splitlines()[-1] == (
        "would restore 3 token(s), 23 point(s) in total (dry run: nothing changed)"
    )
    with deps.session_factory() as s:
        live = s.execute(text("SELECT count(*) FROM exchange_tokens")).scalar_one()
        refunds = s.execute(text("SELECT count(*) FROM ledger WHERE kind = 'refund'")).scalar_one()
        outbox_after = s.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    assert (live, refunds, outbox_after) == (3, 0, outbox_before)
    assert [services.balance(deps, u) for u in users] == [0, 0, 0]


def test_cleanup_restores_each_expired_token_once_prints_a_table_and_a_total(
    settings, scratch, scratch_container
):
    deps = scratch_container.deps
    users = ["alice", "bob", "alice"]
    tokens = expired_tokens(scratch_container, users, [10, 20, 30])
    # Neither a live token nor a redeemed one is the cleanup's business.
    services.credit(deps, "carol", 9)
    live = services.issue(deps, "carol", 4).token
    spent = services.issue(deps, "carol", 5).token
    services.redeem(deps, spent.code, "shop")

    result = run_cli(settings, scratch, "cleanup")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["token_id", "user_id", "points", "expired_at"]
    rows = table_rows(result.stdout)
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        (str(t.id), t.user_id, str(t.points)) for t in tokens
    )
    assert lines[-1] == "restored 3 token(s), 60 point(s) in total"
    assert services.balance(deps, "alice") == 40 and services.balance(deps, "bob") == 20
    assert services.get_token(deps, "carol", live.id).status == "active"
    assert services.get_token(deps, "carol", spent.id).status == "redeemed"
    assert_books_balance(deps.session_factory, ["alice", "bob", "carol"])
    # One JSON log line per restored token and per deleted token, with its ids.
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    deleted = {r["token_id"] for r in logged if r["event"] == "expired token deleted"}
    assert deleted == {str(t.id) for t in tokens}
    assert all({"user_id", "points"} <= set(r) for r in logged if r.get("token_id"))


def test_cleanup_run_twice_restores_nothing_the_second_time(settings, scratch, scratch_container):
    expired_tokens(scratch_container, ["dave", "erin"], [3, 4])
    first = run_cli(settings, scratch, "cleanup")
    second = run_cli(settings, scratch, "cleanup")
    assert first.exit_code == second.exit_code == 0
    assert first.stdout.splitlines()[-1] == "restored 2 token(s), 7 point(s) in total"
    assert second.stdout.strip() == "restored 0 token(s), 0 point(s) in total"
    with scratch_container.deps.session_factory() as s:
        assert s.execute(text("SELECT count(*) FROM ledger WHERE kind = 'refund'")).scalar() == 2


def test_two_cleanups_at_once_restore_each_token_exactly_once(
    settings, scratch, scratch_container
):
    """Two copies of the console script, started together on 600 expired tokens (more
    than one sweep batch): SKIP LOCKED lets them share the work without overlap."""
    deps = scratch_container.deps
    users = [f"pair-{i}" for i in range(6)]
    per_user = 100

    def issue_for(user: str) -> list[TokenView]:
        return expired_tokens(scratch_container, [user] * per_user, [1 + i % 9 for i in
                                                                     range(per_user)])

    with ThreadPoolExecutor(3) as pool:
        tokens = [t for batch in pool.map(issue_for, users) for t in batch]
    env = {**_inherited_env(), **env_for(settings, scratch)}
    procs = [
        subprocess.Popen(  # noqa: S603 - our own console script
            [str(CONSOLE_SCRIPT), "cleanup", "--json"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=90)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [p.returncode for p in procs] == [0, 0]
    reports = [json.loads(out) for out in outputs]
    seen = [t["token_id"] for r in reports for t in r["tokens"]]
    assert len(seen) == len(set(seen)) == len(tokens)  # each once, none missed
    assert set(seen) == {str(t.id) for t in tokens}
    assert sum(r["total_points"] for r in reports) == sum(t.points for t in tokens)
    with deps.session_factory() as s:
        refunds = s.execute(text("SELECT count(*) FROM ledger WHERE kind = 'refund'")).scalar()
        left = s.execute(text("SELECT count(*) FROM exchange_tokens")).scalar()
    assert (refunds, left) == (len(tokens), 0)
    assert_books_balance(deps.session_factory, users)


def _inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}


def test_migrate_creates_a_missing_database_and_is_idempotent(settings, database_url):
    url = scratch_url(database_url, "migrate")
    try:
        first = run_cli(settings, url, "migrate", "--no-broker")
        assert first.exit_code == 0, first.output
        assert first.stdout.splitlines() == [f"created database {url}", "schema up to date"]
        second = run_cli(settings, url, "migrate", "--no-broker")
        assert second.exit_code == 0, second.output
        assert second.stdout.splitlines() == ["schema up to date"]
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                tables = set(conn.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )).scalars())
        finally:
            engine.dispose()
        from alembic.script import ScriptDirectory

        from shared.persistence.migrate import alembic_config

        assert version == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert {"accounts", "ledger", "exchange_tokens", "exchange_requests", "outbox",
                "processed_messages", "idempotency_keys"} <= tables
    finally:
        drop_database(url)


def test_migrate_declares_the_broker_topology_too_and_twice_is_harmless(
    settings, scratch
):
    first = run_cli(settings, scratch, "migrate")
    second = run_cli(settings, scratch, "migrate")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    for result in (first, second):
        assert result.stdout.splitlines()[-1] == (
            f"broker topology declared (namespace {settings.broker_namespace})"
        )


def test_a_bad_setting_stops_a_command_with_a_clear_message(settings, scratch):
    result = CliRunner().invoke(
        main, ["cleanup"], env={**env_for(settings, scratch), "TOKEN_TTL_SECONDS": "0"}
    )
    assert result.exit_code != 0
    assert "TOKEN_TTL_SECONDS" in result.output
    assert "Traceback" not in result.output


def test_jwt_prints_a_token_signed_with_the_secret(settings, scratch):
    result = run_cli(settings, scratch, "jwt", "--sub", f"ops-{uuid.uuid4().hex[:6]}",
                     "--role", "merchant", "--role", "admin")
    assert result.exit_code == 0, result.output
    principal = jwt_tokens.decode(TEST_JWT_SECRET, result.stdout.strip())
    assert principal.sub.startswith("ops-")
    assert principal.roles == frozenset({"merchant", "admin"})


@pytest.mark.parametrize("sub", ["", "u" * 201])
def test_jwt_refuses_a_subject_the_api_would_refuse(settings, scratch, sub):
    result = run_cli(settings, scratch, "jwt", "--sub", sub)
    assert result.exit_code == 2 and "--sub" in result.output
    assert result.stdout.count(".") < 2  # no token printed


NOWHERE_DB = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.mark.parametrize("args", [["cleanup"], ["cleanup", "--dry-run"], ["migrate"]])
def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback(settings, args):
    result = run_cli(settings, NOWHERE_DB, *args)
    assert result.exit_code == 1
    assert "database unavailable at postgresql://postgres@127.0.0.1:1/nowhere" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_migrate_with_the_broker_away_says_so_after_the_schema(settings, scratch):
    env = service_env(settings, DATABASE_URL=scratch, LOG_LEVEL="INFO",
                      AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F")
    result = CliRunner().invoke(main, ["migrate"], env=env)
    assert result.exit_code == 1
    assert "schema up to date" in result.output
    assert "broker unavailable at amqp://guest:***@127.0.0.1:1/%2F" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
