"""JSON logs: one object per line on stderr, with ``ts``, ``level``, ``event`` and whatever
context applies (``token_id``, ``user_id``, ``points``, ``request_id``, ``message_id``).

The request or message being handled is kept in context variables, so a service's log
line and the events it writes carry the id of what caused them, API to outbox to worker.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
message_id_var: ContextVar[str | None] = ContextVar("message_id", default=None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", request_id_var), ("message_id", message_id_var)):
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class _Formatter(JsonFormatter):
    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # ts, level and event first, so a human reading the raw stream finds them at once.
        log_data["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")
        log_data["level"] = record.levelname.lower()
        log_data["event"] = record.getMessage()
        super().add_fields(log_data, record, message_dict)
        log_data.pop("message", None)
        if log_data.get("exc_info") is None:
            log_data.pop("exc_info", None)
        log_data["logger"] = record.name


def json_formatter() -> logging.Formatter:
    return _Formatter(reserved_attrs=[*_RESERVED], json_ensure_ascii=False)


_RESERVED = (
    "args asctime created exc_text filename funcName levelname levelno lineno module msecs "
    "msg name pathname process processName relativeCreated stack_info thread threadName "
    "taskName"
).split()


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, gunicorn's, warnings) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(_ContextFilter())
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
