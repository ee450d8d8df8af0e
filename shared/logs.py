"""JSON logs: one object per line on stderr, with ``ts``, ``level``, ``event`` and whatever
context applies (``token_id``, ``user_id``, ``points``, ``request_id``, ``message_id``).

The request or message being handled is kept in context variables, so a service's log
line and the events it writes carry the id of what caused them, API to outbox to worker.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
message_id_var: ContextVar[str | None] = ContextVar("message_id", default=None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", request_id_var), ("message_id", message_id_var)):
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


_LEVELS = {name: name.lower() for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}

_RESERVED = frozenset((
    "args asctime created exc_info exc_text filename funcName levelname levelno lineno "
    "message module msecs msg name pathname process processName relativeCreated stack_info "
    "thread threadName taskName"
).split())


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)  # UUIDs, Decimals, paths, enums...


# One encoder for every record (json.dumps with options builds a new one per call);
# encode() keeps no state between calls, so threads share it.
_encode = json.JSONEncoder(default=_json_default, ensure_ascii=False).encode


class _Formatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``event`` first (a human reading the
    raw stream finds them at once), then every ``extra`` field, then ``logger`` and, for an
    error, ``exc_info``.

    Our own, not python-json-logger's: a worker logs two lines per refund, and that
    library's per-record work (attribute merging, field renaming hooks) made logging 40 %
    of a refund batch's CPU. This does only what we use; the timestamp's seconds are
    formatted once per second.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # racy between threads, but both write the same value
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        data: dict[str, Any] = {
            "ts": f"{self._prefix}.{int(record.msecs):03d}Z",
            "level": _LEVELS.get(record.levelname) or record.levelname.lower(),
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                data[key] = value
        data["logger"] = record.name
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return _encode(data)


def json_formatter() -> logging.Formatter:
    return _Formatter()


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, gunicorn's, warnings) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(_ContextFilter())
    # Record fields we never print, each a lookup per record: off, as the logging HOWTO's
    # "Optimization" section describes (caller, thread and process information).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pika", "amqp", "kombu", "urllib3", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.captureWarnings(True)


@contextmanager
def bound(request_id: str | None = None, message_id: str | None = None) -> Iterator[None]:
    """Within the block, log lines and outbox events carry these ids."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if message_id is not None:
        tokens.append((message_id_var, message_id_var.set(message_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
