"""Event bodies are validated by the pydantic models in ``schemas/``: a message that is not
one of ours is refused (and will go to the dead-letter queue at once)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.events import (
    SCHEMA_VERSION,
    TokenCancelled,
    TokenExpired,
    TokenIssued,
    TokenRedeemed,
    parse_event,
)

TOKEN = uuid.uuid4()
WHEN = datetime(2030, 1, 1, tzinfo=UTC)


def body(**fields) -> str:
    base = {"type": "TokenIssued", "token_id": str(TOKEN), "user_id": "u1", "points": 5,
            "expires_at": WHEN.isoformat()}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def test_each_event_type_round_trips_through_json():
    events = [
        TokenIssued(token_id=TOKEN, user_id="u", points=1, expires_at=WHEN),
        TokenRedeemed(token_id=TOKEN, user_id="u", points=1, merchant_id="m", reward="tea"),
        TokenCancelled(token_id=TOKEN, user_id="u", points=1),
        TokenExpired(token_id=TOKEN, user_id="u", points=1, expires_at=WHEN, restored=True),
    ]
    for event in events:
        parsed = parse_event(event.model_dump_json())
        assert type(parsed) is type(event)
        assert parsed == event


def test_a_valid_body_gets_its_defaults():
    event = parse_event(body())
    assert isinstance(event, TokenIssued)
    assert event.schema_version == SCHEMA_VERSION
    assert isinstance(event.event_id, uuid.UUID)
    assert event.expires_at == WHEN


def test_an_unknown_type_is_refused():
    with pytest.raises(ValidationError):
        parse_event(body(type="TokenStolen"))


def test_a_missing_field_is_refused():
    with pytest.raises(ValidationError, match="expires_at"):
        parse_event(body(expires_at=None))
    with pytest.raises(ValidationError, match="merchant_id"):
        parse_event(body(type="TokenRedeemed", expires_at=None))


def test_extra_fields_are_ignored_so_newer_producers_do_not_poison_older_consumers():
    event = parse_event(body(added_in_v2="whatever"))
    assert not hasattr(event, "added_in_v2")


@pytest.mark.parametrize("points", [0, -1, 1_000_000_001, "many"])
def test_points_outside_1_to_a_billion_are_refused(points):
    with pytest.raises(ValidationError, match="points"):
        parse_event(body(points=points))


def test_points_at_the_bounds_are_accepted():
    assert parse_event(body(points=1)).points == 1
    assert parse_event(body(points=1_000_000_000)).points == 1_000_000_000


def test_a_body_that_is_not_json_is_refused():
    with pytest.raises(ValidationError):
        parse_event(b"\x00\xffnot json")


def test_events_are_immutable():
    event = TokenCancelled(token_id=TOKEN, user_id="u", points=1)
    with pytest.raises(ValidationError):
        event.points = 2  # type: ignore[misc]
