"""The issue transaction runs as one server-side function (migration 0003). What it writes
must be what the rest of the system reads: the TokenIssued event as the pydantic model
defines it, on the caller's clock, with the ids of what caused it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from schemas.events import SCHEMA_VERSION, TokenIssued, parse_event
from shared import services
from shared.errors import InsufficientPoints
from shared.logs import bound
from shared.messaging.names import H_REQUEST_ID
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps
from shared.services.issue import issue_in
from tests.support.clock import FixedClock


def outbox_row(deps: Deps, token_id: object) -> tuple[dict, dict]:
    with deps.session_factory() as s:
        row = s.execute(text(
            "SELECT payload, headers FROM outbox WHERE event_type = 'TokenIssued'"
            " AND payload->>'token_id' = :t"), {"t": str(token_id)}).one()
    return row.payload, row.headers


def test_the_event_written_in_sql_is_the_pydantic_token_issued(deps, user):
    services.credit(deps, user, 10)
    with bound(request_id="req-123"):
        issued = services.issue(deps, user, 4)
    payload, headers = outbox_row(deps, issued.token.id)
    event = parse_event(json.dumps(payload))
    assert isinstance(event, TokenIssued)
    assert set(payload) == set(TokenIssued.model_fields)  # no field missing, none extra
    assert (event.token_id, event.user_id, event.points) == (issued.token.id, user, 4)
    assert event.schema_version == SCHEMA_VERSION
    assert event.occurred_at == issued.token.created_at
    assert event.expires_at == issued.token.expires_at
    assert event.expires_at - event.occurred_at == timedelta(seconds=deps.token_ttl_seconds)
    assert payload["expires_at"].endswith("Z")  # RFC 3339 in UTC, as pydantic writes it
    assert headers == {H_REQUEST_ID: "req-123"}


def test_a_fixed_clock_reaches_the_function(fixed_deps, clock: FixedClock, user):
    services.credit(fixed_deps, user, 10)
    issued = services.issue(fixed_deps, user, 1)
    assert issued.token.created_at == clock.current
    payload, _ = outbox_row(fixed_deps, issued.token.id)
    assert parse_event(json.dumps(payload)).occurred_at == clock.current


def test_in_a_caller_transaction_nothing_is_kept_without_the_callers_commit(deps, user):
    services.credit(deps, user, 10)
    with unit_of_work(deps.session_factory) as session:
        result, restored, refusal = issue_in(session, deps, user, 3, None)
        assert refusal is None and result is not None and restored == []
        # no commit: the unit of work rolls back
    assert services.balance(deps, user) == 10
    with deps.session_factory() as s:
        assert s.execute(text("SELECT count(*) FROM exchange_tokens WHERE user_id = :u"),
                         {"u": user}).scalar_one() == 0


def test_a_user_never_credited_is_refused_as_having_no_points(deps, user):
    with pytest.raises(InsufficientPoints) as refused:
        services.issue(deps, user, 1)
    assert refused.value.details == {"balance": 0, "points": 1}
