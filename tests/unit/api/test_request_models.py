"""The request models refuse what a money API must not guess about."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.api import CreditRequest, IssueRequest, RedeemRequest


@pytest.mark.parametrize("points", [1, 7, 1_000_000_000])
def test_whole_points_in_range_are_accepted(points):
    assert IssueRequest.model_validate({"points": points}).points == points


@pytest.mark.parametrize("points", [0, -3, 1_000_000_001, 1.0, 2.5, True, "5", None])
def test_other_points_are_refused(points):
    with pytest.raises(ValidationError):
        IssueRequest.model_validate({"points": points})
    with pytest.raises(ValidationError):
        CreditRequest.model_validate({"points": points})


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError) as err:
        IssueRequest.model_validate({"points": 1, "pointz": 1})
    assert err.value.errors()[0]["loc"] == ("pointz",)


@pytest.mark.parametrize("code", ["", "x" * 129, "a\x00b", "\ud800", 12])
def test_codes_must_be_storable_text_of_1_to_128_characters(code):
    with pytest.raises(ValidationError):
        RedeemRequest.model_validate({"code": code})


def test_a_code_of_128_characters_is_accepted():
    assert RedeemRequest.model_validate({"code": "x" * 128}).code == "x" * 128
