"""deploy/compose.yaml brought up for real, on the host's network (see
compose.host-network.yaml beside this file), driven through the compose command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from tests.containers.images import ROOT, docker

OVERRIDE = Path(__file__).with_name("compose.host-network.yaml")


def compose_command() -> list[str]:
    """``docker compose`` (v2 plugin) when present, else Debian's ``docker-compose``."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True,
                      check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("no compose: install Debian's docker-compose or the compose plugin")


def compose_file_for(command: list[str], into: Path) -> Path:
    """deploy/compose.yaml as the tests run it: a copy, read with deploy/ as the project
    directory, less two keys an override cannot take away in every compose release:
    published ports of the services the override puts on the host's network (Docker
    refuses both at once), and, for Debian's docker-compose (v1), which knows the Compose
    Specification but not its top-level ``name``, that name (``-p`` gives it anyway)."""
    spec = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    override = yaml.safe_load(OVERRIDE.read_text(encoding="utf-8"))
    for name, service in override["services"].items():
        if service.get("network_mode") == "host":
            spec["services"][name].pop("ports", None)
    if command == ["docker-compose"]:
        spec.pop("name", None)
    copy = into / "compose.yaml"
    copy.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return copy


class Stack:
    def __init__(self, project: str, env: dict[str, str]) -> None:
        self.project = project
        self.env = env
        command = compose_command()
        self._tmp = tempfile.TemporaryDirectory(prefix="et-compose-")
        compose_file = compose_file_for(command, Path(self._tmp.name))
        self.base = [*command, "-p", project, "--project-directory", str(ROOT / "deploy"),
                     "-f", str(compose_file), "-f", str(OVERRIDE)]

    def compose(self, *args: str, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args], env={**os.environ, **self.env}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def up(self, *services: str, workers: int | None = None) -> None:
        scale = ["--scale", f"worker={workers}"] if workers is not None else []
        self.compose("up", "-d", "--no-deps", "--no-build", "--no-recreate", *scale,
                     *services)

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        args = ["ps", "-q", *(["-a"] if all_states else []), service]
        out = self.compose(*args, check=False).stdout.split()
        return sorted(out)

    def inspect(self, container: str) -> dict:
        return json.loads(docker("inspect", container).stdout)[0]

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return state.get("Health", {}).get("Status", state["Status"])

    def wait_healthy(self, service: str, count: int, timeout: float = 120) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            ids = self.containers(service)
            states = {c: self.health(c) for c in ids}
            if len(ids) == count and all(s == "healthy" for s in states.values()):
                return ids
            if time.monotonic() > deadline:
                logs = "\n".join(self.logs(c)[-2000:] for c in ids)
                raise AssertionError(f"{service}: {states} after {timeout} s\n{logs}")
            time.sleep(0.5)

    def logs(self, container: str) -> str:
        result = docker("logs", container, check=False)
        return result.stdout + result.stderr

    def log_streams(self, container: str) -> tuple[str, str]:
        """(stdout, stderr) of the container, as Docker recorded them."""
        result = docker("logs", container, check=False)
        return result.stdout, result.stderr

    def down(self) -> None:
        self.compose("down", "--remove-orphans", "--timeout", "10", timeout=180, check=False)
        self._tmp.cleanup()
