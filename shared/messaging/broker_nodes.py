"""Several broker nodes of one cluster behind one ``AMQP_URL``.

``AMQP_URL`` may list the nodes of a RabbitMQ cluster separated by ``;``
(``amqp://u:p@h1:5672/%2F;amqp://u:p@h2:5672/%2F``). No AMQP client we use fails over by
itself: py-amqp takes one host, pika tries a list once and never reconnects, kombu's
failover applies to its first connect only. So every connection of the service is opened
through :func:`connect_first`, which tries the nodes in turn, and the roles' own reconnect
loops (exponential backoff with jitter, ``workers/backoff.py``) call it again when their
connection breaks.

A reconnect under the same connection name is taken as a sign that the node it used went
away (killed, paused, cut off, or its queue leaders moved): that node is tried last, so
the role lands on another one at once instead of waiting out a connect timeout on a
paused node. Every process keeps this memory for itself; nothing is shared.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

C = TypeVar("C")

SEPARATOR = ";"


def broker_urls(amqp_url: str) -> list[str]:
    """The node URLs in ``amqp_url``, in the order given (at least one)."""
    urls = [part.strip() for part in amqp_url.split(SEPARATOR) if part.strip()]
    if not urls:
        raise ValueError("no broker URL given")
    return urls


def redact(url: str) -> str:
    """``amqp://host:port/vhost`` without the credentials, for logs."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


class NodeChooser:
    """The order in which to try the nodes for one named connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_used: dict[str, str] = {}  # connection name -> node URL
        self._suspect_since: dict[str, float] = {}  # node URL -> when it was left

    def order(self, urls: list[str], name: str) -> list[str]:
        with self._lock:
            previous = self._last_used.get(name)
            if previous is not None:  # a reconnect: the node we were on is suspect
                self._suspect_since[previous] = time.monotonic()
            # Nodes never left first, in the given order; then the least recently left.
            # A fresh process starts on a random node so that clients spread out.
            fresh = [u for u in urls if u not in self._suspect_since]
            if previous is None and len(fresh) > 1:
                start = random.randrange(len(fresh))  # noqa: S311 - spreading only
                fresh = fresh[start:] + fresh[:start]
            left = sorted((u for u in urls if u in self._suspect_since),
                          key=lambda u: self._suspect_since[u])
            return fresh + left

    def used(self, name: str, url: str) -> None:
        with self._lock:
            self._last_used[name] = url
            self._suspect_since.pop(url, None)


_chooser = NodeChooser()


def connect_first(amqp_url: str, name: str, connect_one: Callable[[str], C],
                  errors: tuple[type[BaseException], ...],
                  chooser: NodeChooser | None = None) -> C:
    """A connection to the first node that accepts one, trying each node once.

    Raises the last node's error when none does: the caller backs off and calls again.
    """
    chooser = chooser or _chooser
    urls = broker_urls(amqp_url)
    last: BaseException | None = None
    for url in chooser.order(urls, name) if len(urls) > 1 else urls:
        try:
            connection = connect_one(url)
        except errors as exc:
            last = exc
            if len(urls) > 1:
                log.warning("broker node unavailable, trying the next",
                            extra={"node": redact(url), "error": repr(exc)[:200]})
            continue
        chooser.used(name, url)
        return connection
    assert last is not None
    raise last
