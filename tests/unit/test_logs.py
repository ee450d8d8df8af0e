"""The JSON log line (docs/observability.md): one object per line, ``ts``, ``level`` and
``event`` first, every extra field, the ids of the request or message being handled."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import UTC, datetime

import pytest

from shared.logs import bound, configure_logging
from tests.support.root_logging import kept_root_logging


@pytest.fixture
def stream():
    with kept_root_logging():
        configure_logging("INFO")
        out = io.StringIO()
        logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]
        yield out


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_has_ts_level_event_first_then_the_fields(stream):
    token = uuid.uuid4()
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with bound(request_id="req-1"):
        logging.getLogger("exchange_tokens.x").info(
            "points restored", extra={"token_id": token, "points": 5, "at": at})
    [record] = lines(stream)
    assert list(record)[:3] == ["ts", "level", "event"]
    assert record["level"] == "info" and record["event"] == "points restored"
    assert datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")  # RFC 3339, ms, UTC
    assert record["token_id"] == str(token) and record["points"] == 5
    assert record["at"] == at.isoformat()
    assert record["request_id"] == "req-1"
    assert record["logger"] == "exchange_tokens.x"
    assert "exc_info" not in record and "msg" not in record and "lineno" not in record


def test_an_error_carries_its_stack_trace(stream):
    try:
        raise ValueError("kaboom")
    except ValueError:
        logging.getLogger("exchange_tokens.y").exception("unhandled error")
    [record] = lines(stream)
    assert record["level"] == "error"
    assert "ValueError: kaboom" in record["exc_info"]
