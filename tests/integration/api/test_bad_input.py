"""Bad input is a 4xx JSON error and moves no point."""

from __future__ import annotations

import io

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


LIMIT = 64 * 1024


def post_chunked(client, path, body: bytes, headers):
    """A body sent without Content-Length (Transfer-Encoding: chunked), as gunicorn hands
    it over: a stream the server itself ends (``wsgi.input_terminated``)."""
    # The stream goes in as wsgi.input itself: given as input_stream, the test client
    # would measure it and declare a Content-Length.
    r = client.post(path, headers={**headers, "Content-Type": "application/json",
                                   "Transfer-Encoding": "chunked"},
                    environ_overrides={"wsgi.input": io.BytesIO(body),
                                       "wsgi.input_terminated": True})
    assert "CONTENT_LENGTH" not in r.request.environ
    return r


def padded(body: bytes, size: int) -> bytes:
    """``body`` followed by spaces (still valid JSON) up to ``size`` bytes."""
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("raw", [padded(b'{"points": 2}', 100_013),
                                 padded(b'{"points": 2}', LIMIT + 1),
                                 b"{" + b" " * (1024 * 1024)], ids=["100k", "limit+1", "1MiB"])
def test_a_chunked_body_over_64_kib_is_413_and_issues_nothing(client, auth, user, credit,
                                                               raw):
    # werkzeug cuts a body without Content-Length at MAX_CONTENT_LENGTH: the valid JSON
    # prefix was issued (201), an unfinished one answered 400.
    credit(user, 10)
    r = post_chunked(client, "/api/exchange-tokens/", raw, auth(user))
    assert_error(r, 413, "payload_too_large")
    status = client.get("/api/exchange-tokens/status/", headers=auth(user)).get_json()
    assert status["balance"] == 10 and status["active"] == []


def test_a_chunked_body_of_exactly_64_kib_is_accepted(client, auth, user, credit):
    credit(user, 10)
    r = post_chunked(client, "/api/exchange-tokens/", padded(b'{"points": 2}', LIMIT),
                     auth(user))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["balance"] == 8


def test_a_chunked_credit_over_64_kib_is_413_and_credits_nothing(client, admin, user,
                                                                  credit, balance_of):
    credit(user, 10)
    r = post_chunked(client, f"/api/accounts/{user}/credits",
                     padded(b'{"points": 5}', LIMIT + 1), admin)
    assert_error(r, 413, "payload_too_large")
    assert balance_of(user) == 10


def test_a_chunked_redeem_over_64_kib_is_413_and_redeems_nothing(client, auth, user, credit,
                                                                  merchant):
    credit(user, 10)
    token = client.post("/api/exchange-tokens/", json={"points": 3},
                        headers=auth(user)).get_json()["token"]
    body = padded(b'{"code": "%s"}' % token["code"].encode(), LIMIT + 1)
    r = post_chunked(client, "/api/exchange-tokens/redeem/", body, auth(merchant, "merchant"))
    assert_error(r, 413, "payload_too_large")
    r = client.get(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    assert r.get_json()["status"] == "active"


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
