"""The image's health check: exit 0 while the role this container runs is healthy.

The role is read from the command line of the ``exchange-tokens`` process in the
container: ``api`` is healthy while ``GET /readyz`` answers 200 (database and broker
answer), ``worker`` while every series of ``exchange_tokens_worker_consuming`` on its
metrics port is 1 (a worker whose consumers stopped still runs, and must not count as
healthy). Any other command is a one-shot job, with nothing to ask. Standard library
only, so it runs even when the project's packages are broken.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

CONSUMING = "exchange_tokens_worker_consuming"


def running_command(proc: Path = Path("/proc")) -> tuple[list[str], dict[str, str]] | None:
    """(arguments after ``exchange-tokens``, environment) of the service's process.

    Its own environment, not this check's: a container may start the process with a port
    chosen at start (several workers sharing the host's network each need their own)."""
    for entry in sorted(proc.iterdir(), key=lambda e: e.name):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        # The console script is the program (argv[0]) or the interpreter's script
        # (argv[1]); later on, it is only an argument, e.g. to the init or a shell.
        for i, arg in enumerate(argv[:2]):
            if arg.endswith(b"/exchange-tokens") or arg == b"exchange-tokens":
                args = [a.decode(errors="replace") for a in argv[i + 1:] if a]
                env = dict(e.decode(errors="replace").partition("=")[::2]
                           for e in environ if b"=" in e)
                return args, env
    return None


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def api_ready(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=4) as reply:
            return reply.status == 200
    except OSError:
        return False


def worker_consuming(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=4) as reply:
            body = reply.read().decode()
    except OSError:
        return False
    values = []
    for line in body.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == CONSUMING:
            values.append(float(line.rsplit(" ", 1)[1]))
    return bool(values) and min(values) >= 1


def main() -> int:
    found = running_command()
    if found is None or not found[0]:
        return 1  # the service's process is gone: nothing is serving
    args, env = found
    if args[0] == "api":
        return 0 if api_ready(env.get("PORT", "8000")) else 1
    if args[0] == "worker":
        port = option(args, "--metrics-port") or env.get("WORKER_METRICS_PORT", "9100")
        return 0 if port != "0" and worker_consuming(port) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
