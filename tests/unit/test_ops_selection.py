"""The ops console's selections: ids, a group, or a filter evaluated on the server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pika
import pytest

from shared.messaging.names import H_DEAD_LETTERED_AT, H_EXCEPTION, H_REASON
from shared.services.ops_dead_letters import DeadLetter
from shared.services.ops_preview import FAILURE, NO_OP, OTHER, REFUND, Effect, classify
from shared.services.ops_selection import Filter, InvalidSelection, Selection

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def letter(mid: str, type_: str = "TokenExpired", reason: str = "exhausted",
           exception: str | None = "RuntimeError: database unavailable",
           parked_ago: float | None = 60, user: str = "u-1") -> DeadLetter:
    headers: dict[str, object] = {H_REASON: reason}
    if exception:
        headers[H_EXCEPTION] = exception
    if parked_ago is not None:
        headers[H_DEAD_LETTERED_AT] = (NOW - timedelta(seconds=parked_ago)).isoformat()
    body = json.dumps({"type": type_, "user_id": user, "token_id": "t"}).encode()
    return DeadLetter.read(body, pika.BasicProperties(message_id=mid, headers=headers))


LETTERS = [
    letter("a"),
    letter("b", exception="ValueError: bad", reason="poison"),
    letter("c", type_="TokenRedeemed", parked_ago=3600),
    letter("d", exception=None, parked_ago=None),
]


def ids(selection: Selection) -> list[str]:
    return [dl.id for dl in selection.pick(LETTERS, NOW)]


def test_ids_select_exactly_those_present():
    assert ids(Selection(ids=("c", "a", "zz"))) == ["a", "c"]


def test_a_group_is_an_exception_type_and_a_reason():
    assert ids(Selection(group=("RuntimeError", "exhausted"))) == ["a", "c"]
    assert ids(Selection(group=("ValueError", "poison"))) == ["b"]
    assert ids(Selection(group=("(none)", "exhausted"))) == ["d"]


def test_a_filter_matches_every_given_field():
    assert ids(Selection(filter=Filter())) == ["a", "b", "c", "d"]
    assert ids(Selection(filter=Filter(type="TokenExpired"))) == ["a", "b", "d"]
    assert ids(Selection(filter=Filter(reason="poison"))) == ["b"]
    assert ids(Selection(filter=Filter(exception="DATABASE"))) == ["a", "c"]
    assert ids(Selection(filter=Filter(type="TokenExpired", exception="database"))) == ["a"]


def test_an_age_filter_keeps_older_letters_and_skips_those_without_a_time():
    assert ids(Selection(filter=Filter(min_age_seconds=600))) == ["c"]
    assert ids(Selection(filter=Filter(min_age_seconds=0))) == ["a", "b", "c"]


@pytest.mark.parametrize("kwargs", [{}, {"ids": ()}, {"ids": ("a",), "filter": Filter()}])
def test_a_selection_names_exactly_one_way_of_choosing(kwargs):
    with pytest.raises(InvalidSelection):
        Selection(**kwargs)


@pytest.mark.parametrize("selection", [
    Selection(ids=("a", "b")),
    Selection(group=("RuntimeError", "exhausted")),
    Selection(filter=Filter(type="TokenExpired", min_age_seconds=5.0)),
])
def test_a_selection_round_trips_through_json(selection):
    assert Selection.from_json(json.loads(json.dumps(selection.as_json()))) == selection


def test_from_json_refuses_an_empty_selection():
    with pytest.raises(InvalidSelection):
        Selection.from_json({})


@pytest.mark.parametrize(("verdict", "expected"), [
    ("token expired: would restore 70 points", (REFUND, 70)),
    ("token already restored (expired, 70 points): no-op", (NO_OP, 0)),
    ("poison: would fail again (body: invalid)", (FAILURE, 0)),
    ("cannot replay: no original exchange: would stay parked", (FAILURE, 0)),
    ("would create exchange request", (OTHER, 0)),
])
def test_verdicts_are_classified_into_effects(verdict, expected):
    assert classify(verdict) == expected


def test_the_effect_sums_points_and_counts_distinct_users():
    effect = Effect()
    effect.add(letter("a", user="u-1"), "token expired: would restore 70 points")
    effect.add(letter("b", user="u-1"), "token expired: would restore 30 points")
    effect.add(letter("c", user="u-2"), "token expired: would restore 5 points")
    effect.add(letter("d"), "token already active: no-op")
    assert effect.as_json() == {"messages": 4, "refunds": 3, "points_refunded": 105,
                                "users": 2, "no_ops": 1, "failures": 0, "other": 0}
