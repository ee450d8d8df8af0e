"""How to start ``exchange-tokens worker`` (or say why it cannot be started yet)."""

from __future__ import annotations

import subprocess

from bench.context import NotMeasured
from bench.processes import BIN


def worker_argv(role: str | None = None) -> list[str]:
    exe = BIN / "exchange-tokens"
    if not exe.exists():
        raise NotMeasured("the exchange-tokens console script is not installed")
    helptext = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30)
    if " worker " not in helptext.stdout:
        raise NotMeasured("`exchange-tokens worker` does not exist yet")
    argv = [str(exe), "worker"]
    if role:
        argv += ["--role", role]
    return argv
