"""deploy/wait_for_schema.py, the Kubernetes init container's check: it lets the pod start
only once the database's schema is the one the image's code expects."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from shared.persistence import migrate as migrations
from tests.support.service_env import service_env

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "wait_for_schema.py"


def wait(settings, database_url: str, timeout: str) -> subprocess.CompletedProcess[str]:
    env = service_env(settings, inherit=True, DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--timeout", timeout, "--interval", "0.2"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_migrated_database_passes_at_once(settings, database_url) -> None:
    result = wait(settings, database_url, "5")
    assert result.returncode == 0, result.stderr
    assert "schema up to date" in result.stdout


def test_an_unmigrated_database_holds_the_pod_back_then_passes_once_migrated(
    settings, database_url
) -> None:
    url = make_url(database_url).set(database=f"exchange_tokens_schema_{uuid.uuid4().hex[:8]}")
    rendered = url.render_as_string(hide_password=False)
    migrations.ensure_database(rendered)
    try:
        held = wait(settings, rendered, "1")
        assert held.returncode == 1
        assert "schema not ready" in held.stderr and "code expects" in held.stderr
        migrations.upgrade(rendered)
        assert wait(settings, rendered, "5").returncode == 0
    finally:
        migrations.drop_database(rendered)


def test_a_database_that_does_not_answer_times_out_with_a_reason(settings) -> None:
    result = wait(settings, "postgresql://postgres@127.0.0.1:1/nothing", "1")
    assert result.returncode == 1
    assert "database not answering" in result.stderr
