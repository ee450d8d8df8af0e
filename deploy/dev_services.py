"""Before `make run`: are PostgreSQL and RabbitMQ answering where the settings point?

If both answer, nothing to do. If one does not and a Docker engine does, start the
developer's servers (deploy/dev-services.yaml, `make services`) and say so. With neither,
stop with one line saying what to start or install. Exit status 0 means: go on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from urllib.parse import urlsplit

DEFAULTS = {
    "DATABASE_URL": ("postgresql://localhost:5432/exchange_tokens", 5432),
    "AMQP_URL": ("amqp://guest:guest@localhost:5672/%2F", 5672),
}


def endpoint(variable: str) -> tuple[str, int]:
    default, port = DEFAULTS[variable]
    # A cluster URL lists several nodes: the first one is enough to tell.
    url = os.environ.get(variable, default).split(";")[0]
    parts = urlsplit(url)
    host = (parts.hostname or "localhost").split(",")[0]
    return host, parts.port or port


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20,  # noqa: S607
                          check=False).returncode == 0


def main() -> int:
    missing = [f"{name} ({host}:{port})" for name, (host, port) in
               ((v, endpoint(v)) for v in DEFAULTS) if not answers(host, port)]
    if not missing:
        return 0
    if docker_answers():
        print(f"nothing answers at {', '.join(missing)}: starting them in Docker "
              "(make services)", flush=True)
        return subprocess.run(["make", "services"], check=False).returncode  # noqa: S607
    print(f"nothing answers at {', '.join(missing)} and no Docker engine runs: start "
          "PostgreSQL and RabbitMQ, or install Docker and run `make services`",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
