"""Bad input is a 4xx JSON error and moves no point."""

from __future__ import annotations

import pytest

from tests.integration.api.test_auth_and_errors import assert_error

BAD_POINTS = [0, -1, 1.0, 2.5, True, "5", None, 1_000_000_001, 10**30, [], {}]


@pytest.mark.parametrize("points", BAD_POINTS, ids=repr)
def test_points_that_are_not_a_whole_number_in_range_are_422(client, auth, admin, user,
                                                              credit, balance_of, points):
    credit(user, 100)
    r = client.post("/api/exchange-tokens/", json={"points": points}, headers=auth(user))
    error = assert_error(r, 422, "validation_error")
    assert [f["field"] for f in error["details"]["fields"]] == ["points"]
    r = client.post(f"/api/accounts/{user}/credits", json={"points": points}, headers=admin)
    assert_error(r, 422, "validation_error")
    assert balance_of(user) == 100


def test_the_largest_allowed_points_are_accepted(client, admin, user):
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 1_000_000_000},
                    headers=admin)
    assert r.status_code == 201


@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b"{'points': 1}", b'{"points": NaN}',
                                 b"\xff\xfe", b"[" * 100_00])
def test_malformed_json_is_400_bad_request(client, auth, user, credit, balance_of, raw):
    credit(user, 10)
    r = client.post("/api/exchange-tokens/", data=raw, content_type="application/json",
                    headers=auth(user))
    assert_error(r, 400, "bad_request")
    assert balance_of(user) == 10


@pytest.mark.parametrize("raw", [b"[]", b'"points"', b"5", b"null"])
def test_a_body_that_is_not_an_object_is_422(client, auth, user, raw):
    r = client.post("/api/exchange-tokens/", data=raw, content_type="application/json",
                    headers=auth(user))
    assert_error(r, 422, "validation_error")


def test_unknown_fields_are_refused_with_422(client, auth, admin, user, credit, balance_of):
    credit(user, 10)
    r = client.post("/api/exchange-tokens/", json={"points": 1, "pointz": 2}, headers=auth(user))
    error = assert_error(r, 422, "validation_error")
    assert [f["field"] for f in error["details"]["fields"]] == ["pointz"]
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 1, "user_id": "x"},
                    headers=admin)
    assert_error(r, 422, "validation_error")
    assert balance_of(user) == 10


def test_a_body_over_64_kib_is_413(client, auth, user, credit, balance_of):
    credit(user, 10)
    huge = {"points": 1, "reward": "x" * (65 * 1024)}
    r = client.post("/api/exchange-tokens/", json=huge, headers=auth(user))
    assert_error(r, 413, "payload_too_large")
    assert balance_of(user) == 10


@pytest.mark.parametrize(("code", "status"), [("", 422), ("x" * 129, 422), (5, 422),
                                              (None, 422), ("a\x00b", 422), ("x" * 128, 404)])
def test_redeem_codes_must_be_1_to_128_characters(client, auth, merchant, code, status):
    r = client.post("/api/exchange-tokens/redeem/", json={"code": code},
                    headers=auth(merchant, "merchant"))
    assert_error(r, status, "validation_error" if status == 422 else "token_not_found")


def test_text_the_database_cannot_store_is_422_not_500(client, auth, admin, user, credit):
    credit(user, 10)
    for reward in ("a\x00b", "\ud800"):
        r = client.post("/api/exchange-tokens/", json={"points": 1, "reward": reward},
                        headers=auth(user))
        assert_error(r, 422, "validation_error")
    r = client.post(f"/api/accounts/{'u' * 201}/credits", json={"points": 1}, headers=admin)
    assert_error(r, 422, "validation_error")
