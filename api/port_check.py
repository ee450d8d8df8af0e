"""Refuse to serve on a port another server already listens on.

The API's workers bind with SO_REUSEPORT (each its own socket, spread by the kernel), and
the kernel lets any process of the same user join such a port: a second API started on
a busy port came up without a word and the two split the requests between them, two
deployments with different settings answering one address. So before gunicorn starts,
the port is bound once without SO_REUSEPORT, which any listener on it refuses.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


class PortInUse(Exception):
    pass


def ensure_port_free(port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - the API's bind
    """Raise PortInUse, with one line naming the port (and its holder when this user may
    see it), if something listens on ``port``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Connections of an earlier run in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        holder = listener_of(port)
        by = f" by {holder}" if holder else " by another server"
        raise PortInUse(f"port {port} is already in use{by}; stop it or set PORT") from None
    finally:
        probe.close()


def listener_of(port: int) -> str | None:
    """``pid N (command)`` of the process listening on ``port``, when /proc shows it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                    command = " ".join(Path(arg).name if "/" in arg else arg for arg in argv)
                    return f"pid {proc.name} ({command.strip()[:80]})"
        except OSError:
            continue  # another user's process, or gone
    return None
