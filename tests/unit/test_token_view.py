"""``expires_in``: the whole seconds left, rounded down, 0 when none or once redeemed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.services.views import TokenView

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def view(seconds_left: float, status: str = "active") -> TokenView:
    return TokenView(
        id=uuid.uuid4(), code="c", user_id="u", points=1, reward=None, status=status,
        created_at=NOW - timedelta(seconds=10), expires_at=NOW + timedelta(seconds=seconds_left),
        redeemed_at=NOW if status == "redeemed" else None,
        merchant_id="m" if status == "redeemed" else None, as_of=NOW,
    )


@pytest.mark.parametrize(
    ("left", "expected"),
    [(180, 180), (179.999, 179), (1.5, 1), (0.999999, 0), (0, 0), (-3, 0), (-0.5, 0)],
)
def test_expires_in_rounds_down_and_never_goes_negative(left, expected):
    assert view(left).expires_in == expected


def test_a_redeemed_token_has_no_time_left():
    assert view(120, status="redeemed").expires_in == 0


def test_expires_in_counts_from_the_databases_now_not_the_local_clock():
    token = view(60)
    # as_of is the database's "now" when read: the answer does not drift while we wait.
    assert token.expires_in == 60
    assert token.expires_in == 60
