"""The README's "Trying it" session runs as written against ``run-all`` and says what the
README says it says (only the port is this test's)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.e2e.conftest import CLI
from tests.e2e.test_run_all import start

ROOT = Path(__file__).resolve().parents[2]


def readme_session() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Trying it", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_session_runs_and_the_second_redeem_is_refused(spawn, process_env,
                                                                    tmp_path):
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"the README's session needs {tool}"
    session = readme_session()
    assert "http://localhost:8000/api" in session and ".venv/bin/exchange-tokens" in session
    _, port = start(spawn, process_env, tmp_path)
    script = (session.replace("http://localhost:8000/api", f"http://localhost:{port}/api")
              .replace(".venv/bin/exchange-tokens", CLI))
    # The session's own environment is the server's (its JWT_SECRET signs the tokens).
    done = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=process_env,  # noqa: S603, S607
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    credited = json.loads(out.splitlines()[0])
    assert credited["user_id"] == "alice" and credited["balance"] >= 500
    assert '"status": "redeemed"' in out and '"user_id": "alice"' in out
    assert out.rstrip().splitlines()[-1] == '"token_already_redeemed"'
