"""One slim, non-root image for every role, with nothing secret inside and the console
script as its entrypoint."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.unit.deploy.conftest import DEPLOY, ROOT

SECRETISH = re.compile(r"SECRET|PASSWORD|PASSWD|_PASS$|TOKEN|API_KEY|PRIVATE|DATABASE_URL|AMQP_URL")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def env_and_arg_names() -> set[str]:
    names = set()
    for keyword, args in instructions():
        if keyword == "ARG":
            names.add(args.split("=", 1)[0])
        elif keyword == "ENV":
            names.update(m.group(1) for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=", args))
    return names


def test_the_image_runs_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage never switches user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Nothing runs as root after the switch.
    last_user = max(i for i, (k, _) in enumerate(runtime) if k == "USER")
    assert all(k != "RUN" for k, _ in runtime[last_user:])


def test_no_env_or_arg_sets_a_secret_or_a_url_with_credentials() -> None:
    names = env_and_arg_names()
    assert {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= names
    assert not {n for n in names if SECRETISH.search(n)}


def test_the_entrypoint_is_the_console_script_and_the_default_role_is_the_api() -> None:
    runtime = dict(stages()[-1])
    assert json.loads(runtime["ENTRYPOINT"]) == ["exchange-tokens"]
    assert json.loads(runtime["CMD"]) == ["api"]
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert re.search(r"^\s*exchange-tokens\s*=", scripts, flags=re.MULTILINE)


def test_the_runtime_is_slim_python_3_11_and_takes_only_the_build_stages_environment() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "not a multi-stage build"
    arg_defaults = dict(
        args.split("=", 1) for keyword, args in instructions() if keyword == "ARG" and "=" in args
    )
    # The base is a build argument (the tests build on a local bookworm when no registry
    # answers), whose default is the public slim image.
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]+)?",
                        arg_defaults["BASE_IMAGE"])

    def base(stage: list[tuple[str, str]]) -> str:
        return stage[0][1].split()[0]

    for stage in all_stages:
        assert base(stage) == "${BASE_IMAGE}"
    copies = [a for k, a in all_stages[-1] if k == "COPY"]
    # The build stage's sources, wheels and tools stay behind: only its environment moves.
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_the_build_needs_no_buildkit() -> None:
    # Debian's dockerd has only the classic builder: no RUN --mount, no syntax directive.
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "--mount" not in text and "# syntax" not in text


def test_the_image_healthcheck_is_the_role_aware_script() -> None:
    checks = [args for keyword, args in instructions() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert checks[0].endswith('CMD ["python", "/opt/venv/lib/healthcheck.py"]')
    copies = [a.split() for k, a in instructions() if k == "COPY"]
    assert any("deploy/healthcheck.py" in c[:-1] and c[-1] == "/opt/venv/lib/" for c in copies)


def test_every_path_the_build_copies_exists_and_is_not_ignored() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for keyword, args in instructions():
        if keyword == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source


def test_hadolint_finds_nothing_to_fix() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_stage_copies_every_package_the_distribution_ships() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    shipped = {p.strip().rstrip("*") for p in
               config["options.packages.find"]["include"].split() if p.strip()}
    copied = {args.split()[0].rstrip("/") for keyword, args in stages()[0]
              if keyword == "COPY" and "--from" not in args}
    assert shipped and shipped <= copied, shipped - copied
