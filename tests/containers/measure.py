"""The image's figures: size, and an API container's cold start to ready.

    .venv/bin/python -m tests.containers.measure [IMAGE]

Builds the image if it is missing, migrates a scratch database, starts the API container
on the host's network against the local PostgreSQL and RabbitMQ, and times `docker run`
until GET /readyz answers 200 (polled every 50 ms). Everything it made is removed.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
import uuid

from shared.persistence import migrate as migrations
from shared.settings import Settings
from tests.containers import images

DATABASE = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310 - our own http URL
            return reply.status == 200
    except OSError:
        return False


def cold_start(image: str, runs: int = 3) -> list[float]:
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=DATABASE.rsplit("/", 1)[0] + f"/exchange_tokens_measure_{run}",
        amqp_url=AMQP, broker_namespace=f"et_measure_{run}", jwt_secret="m" * 48,
        app_env="production",
    )
    migrations.ensure_database(settings.sqlalchemy_url)
    migrations.upgrade(settings.sqlalchemy_url)
    timings = []
    try:
        for _ in range(runs):
            port = free_port()
            started = time.monotonic()
            container = images.docker(
                "run", "-d", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",  # noqa: S108
                "-e", f"DATABASE_URL={settings.database_url}", "-e", f"AMQP_URL={AMQP}",
                "-e", f"BROKER_NAMESPACE={settings.broker_namespace}",
                "-e", f"JWT_SECRET={settings.jwt_secret}", "-e", f"PORT={port}", image, "api",
            ).stdout.strip()
            try:
                deadline = started + 120
                while not ready(f"http://127.0.0.1:{port}/readyz"):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the API was not ready within 120 s")
                    time.sleep(0.05)
                timings.append(time.monotonic() - started)
            finally:
                images.docker("stop", "--time", "10", container, check=False)
    finally:
        migrations.drop_database(settings.sqlalchemy_url)
        from shared.messaging.topology import delete_topology

        delete_topology(settings)
    return timings


def main() -> None:
    image = sys.argv[1] if len(sys.argv) > 1 else "exchange-tokens:test"
    if not images.image_exists(image):
        images.build(image)
    size = images.image_size(image)
    timings = cold_start(image)
    print(f"image {image}: {size / 1e6:.0f} MB")
    print("API cold start to ready: " + ", ".join(f"{t:.1f} s" for t in timings)
          + f" (best {min(timings):.1f} s)")


if __name__ == "__main__":
    main()
