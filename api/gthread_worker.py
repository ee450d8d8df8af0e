"""gunicorn's threaded worker (``WEB_WORKER=gthread``), its own refusals as JSON.

gunicorn writes a refusal it makes before the app (a malformed request line, a header too
large, broken chunking) as an HTML page. This worker hands gunicorn a writer that turns
that page into the contract's JSON error body, same status, still ``Connection: close``.
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from api.server_refusals import error_body


class _JsonRefusalWriter:
    """Looks enough like the client's socket for gunicorn's ``write_error``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def sendall(self, page: bytes) -> None:
        status_line = page.split(b"\r\n", 1)[0].decode("latin-1")
        _, status, reason = (status_line.split(" ", 2) + [""])[:3]
        body = error_body(int(status), "")
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self._sock.sendall(head.encode("latin-1") + body)


class JsonRefusalThreadWorker(ThreadWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        super().handle_error(req, _JsonRefusalWriter(client), addr, exc)
