"""Free port ranges for a cluster, away from the machine's own services."""

from __future__ import annotations

import random
import socket

LOW, HIGH = 30000, 45000  # below Linux's ephemeral range (32768+ is avoided by the span)


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(span: int) -> int:
    """The first port of ``span`` consecutive free ports, picked at random so that
    parallel runs on one machine do not collide."""
    for _ in range(200):
        base = random.randrange(LOW, HIGH - span, 100)  # noqa: S311 - not a secret
        if all(_free(p) for p in range(base, base + span)):
            return base
    raise RuntimeError("no free block of ports found")
