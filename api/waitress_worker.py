"""A gunicorn worker that serves with waitress.

gunicorn stays the process manager (workers, restarts, graceful stops, one listening
socket per worker); each worker runs waitress on the sockets gunicorn gave it.

Why: a gthread worker hands a connection to one of its few threads as soon as it is
accepted, and the thread waits there for the request head. 16 connections that send half
a head and stop held every thread, so every other client timed out. waitress reads whole
requests (head and body) on one asynchronous loop and only then hands them to a thread of
the app, so a slow or idle connection costs a file descriptor, not a thread.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from typing import Any

from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from api.server_refusals import MAX_BODY_BYTES, MAX_HEAD_BYTES, JsonRefusalChannel

LOOP_TICK_SECONDS = 1.0  # how often the worker tells the master it is alive, at least


class WaitressWorker(Worker):
    _wake: Any = None

    def run(self) -> None:
        # "Task queue depth is N", once per request that waits for a thread: at peak
        # load that is a warning line per request. The latency metrics show saturation.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        socket_map: dict[int, Any] = {}
        create_server(
            self.wsgi,
            map=socket_map,
            sockets=[listener.sock for listener in self.sockets],
            threads=self.cfg.threads,
            connection_limit=_connection_limit(self.cfg.worker_connections),
            channel_timeout=self.cfg.timeout,  # idle or stalled connections are closed
            max_request_header_size=MAX_HEAD_BYTES,
            max_request_body_size=MAX_BODY_BYTES,
            ident="exchange-tokens",
            asyncore_use_poll=True,  # select() cannot watch descriptors past 1024
        )
        servers = [d for d in socket_map.values() if isinstance(d, BaseWSGIServer)]
        self._wake = servers[0].pull_trigger
        for server in servers:
            server.channel_class = JsonRefusalChannel
        try:
            while self.alive and self.ppid == os.getppid():
                self.notify()
                wasyncore.loop(timeout=LOOP_TICK_SECONDS, use_poll=True, map=socket_map,
                               count=1)
            self._finish(socket_map, servers)
        finally:
            servers[0].task_dispatcher.shutdown(cancel_pending=True, timeout=1)

    def _finish(self, socket_map: dict[int, Any], servers: list[Any]) -> None:
        """Graceful stop: accept nothing more, finish the requests already read (their
        answers sent) within the graceful timeout, then close what is left."""
        for server in servers:
            server.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline and any(
                _busy(d) for d in list(socket_map.values())):
            self.notify()
            wasyncore.loop(timeout=0.1, use_poll=True, map=socket_map, count=1)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if self._wake is not None:
            self._wake()  # wake the loop now, not at its next tick


def _connection_limit(wanted: int) -> int:
    """Connections a worker holds at once (past it new ones wait in the backlog), kept
    under its open-file limit with room for its database pool and log files: at the
    limit, accept() fails and waitress would log it for every new connection."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - 64))


def _busy(dispatcher: Any) -> bool:
    return isinstance(dispatcher, HTTPChannel) and bool(
        dispatcher.requests or dispatcher.total_outbufs_len)
