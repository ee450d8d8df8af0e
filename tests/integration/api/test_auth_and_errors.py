"""Authentication, roles, and the one JSON error shape for every failure."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET


def _jwt(claims, secret=TEST_JWT_SECRET):
    return {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not.a.jwt"},
    _jwt({"sub": "u", "exp": int(time.time()) + 86_400}, secret="another-secret-another-secret-of-32-bytes!"),
    _jwt({"sub": "u", "exp": int(time.time()) - 3600}),
    _jwt({"sub": "u"}),
    _jwt({"exp": int(time.time()) + 86_400}),
    _jwt({"sub": "u", "exp": int(time.time()) + 86_400, "roles": "user"}),
], ids=["missing", "empty", "basic", "malformed", "bad-signature", "expired", "no-exp",
        "no-sub", "roles-not-a-list"])
def test_a_bad_or_missing_bearer_token_is_401(client, headers):
    for method, path in (("GET", "/api/accounts/me"), ("POST", "/api/exchange-tokens/"),
                         ("GET", "/api/exchange-tokens/status/")):
        r = client.open(path, method=method, headers=headers, json={"points": 1})
        assert_error(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_roles_default_to_user(client):
    r = client.get("/api/accounts/me", headers=_jwt({"sub": "u-default",
                                                    "exp": int(time.time()) + 60}))
    assert r.status_code == 200


@pytest.mark.parametrize(("roles", "method", "path", "body"), [
    (["user"], "POST", "/api/accounts/someone/credits", {"points": 1}),
    (["merchant"], "POST", "/api/accounts/someone/credits", {"points": 1}),
    (["user"], "POST", "/api/exchange-tokens/redeem/", {"code": "X"}),
    (["admin"], "POST", "/api/exchange-tokens/redeem/", {"code": "X"}),
    (["admin"], "GET", "/api/accounts/me", None),
    (["merchant"], "POST", "/api/exchange-tokens/", {"points": 1}),
    (["admin", "merchant"], "GET", "/api/exchange-tokens/status/", None),
    (["merchant"], "GET", "/api/exchange-requests/", None),
])
def test_roles_are_exact_and_a_wrong_role_is_403(client, auth, roles, method, path, body):
    r = client.open(path, method=method, headers=auth("someone", *roles), json=body)
    assert_error(r, 403, "forbidden")


def test_an_unknown_route_is_404_not_found_in_json(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.post("/api/nope/", json={}), 404, "not_found")


def test_a_wrong_method_is_405_in_json(client):
    r = client.put("/api/exchange-tokens/status/")
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_a_wrong_method_on_redeem_or_status_is_405_not_a_token_lookup(client):
    # These paths also fit /api/exchange-tokens/<id>: they must not be read as a token id,
    # and their Allow header names their own methods, not the token route's GET and DELETE.
    own = {"redeem": {"POST", "OPTIONS"}, "status": {"GET", "HEAD", "OPTIONS"}}
    for name, methods in own.items():
        for path in (f"/api/exchange-tokens/{name}/", f"/api/exchange-tokens/{name}"):
            for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods:
                r = client.open(path, method=method)
                assert_error(r, 405, "method_not_allowed")
                assert set(r.headers["Allow"].split(", ")) == methods, (method, path)
            r = client.options(path)
            assert r.status_code == 200
            assert set(r.headers["Allow"].split(", ")) == methods, path


def test_the_own_route_405_comes_after_the_request_set_up(client):
    # A declared oversize body is refused first (413), whatever the method; the 405 carries
    # the request id the client sent.
    big = b"x" * (64 * 1024 + 1)
    r = client.put("/api/exchange-tokens/redeem/", data=big)
    assert_error(r, 413, "payload_too_large")
    r = client.put("/api/exchange-tokens/status/", headers={"X-Request-ID": "trace-405"})
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["X-Request-ID"] == "trace-405"


def test_a_path_with_doubled_slashes_is_a_json_404_not_a_redirect(client, auth):
    for method, path in (("post", "/api//exchange-tokens/"),
                         ("put", "/api/exchange-tokens//redeem/"),
                         ("get", "/api/exchange-tokens//status/"),
                         ("options", "/api//exchange-tokens/status")):
        r = getattr(client, method)(path, headers=auth("someone"))
        assert_error(r, 404, "not_found")


def test_an_unexpected_exception_is_a_500_without_stack_and_is_logged(app, client, auth,
                                                                      caplog, monkeypatch):
    from shared.services import queries

    def boom(*_args):
        raise RuntimeError("kaboom secret detail")

    monkeypatch.setattr(queries, "_balance", boom)
    r = client.get("/api/accounts/me", headers={**auth("u-500"), "X-Request-ID": "rid-500"})
    error = assert_error(r, 500, "internal_error")
    assert "kaboom" not in r.get_data(as_text=True)
    assert "Traceback" not in r.get_data(as_text=True)
    assert error["details"] == {}
    [record] = [rec for rec in caplog.records if rec.getMessage() == "unhandled error"]
    assert record.exc_info and "kaboom" in str(record.exc_info[1])
    assert record.request_id == "rid-500"


def test_messages_are_french_when_the_client_prefers_french(client, auth, user):
    fr = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    error = assert_error(client.get("/api/accounts/me", headers=fr), 401, "unauthorized")
    assert error["message"] == "Un jeton d'authentification valide est requis."
    error = assert_error(client.get("/nope", headers=fr), 404, "not_found")
    assert error["message"] == "Cette route n'existe pas."
    error = assert_error(client.post("/api/exchange-tokens/", json={"points": 0},
                                     headers={**auth(user), **fr}), 422, "validation_error")
    assert error["message"].startswith("La requête est invalide")
    r = client.post("/api/exchange-tokens/", json={"points": 5}, headers={**auth(user), **fr})
    assert assert_error(r, 409, "insufficient_points")["message"] == (
        "Points insuffisants : le solde est de 0.")


def test_messages_stay_english_unless_french_is_preferred(client):
    for header in ({}, {"Accept-Language": "en-GB,fr;q=0.5"}, {"Accept-Language": "de"}):
        error = assert_error(client.get("/nope", headers=header), 404, "not_found")
        assert error["message"] == "No such route."


def test_a_cancelled_token_says_in_french_that_points_were_restored(client, auth, user,
                                                                     credit):
    credit(user, 10)
    token = client.post("/api/exchange-tokens/", json={"points": 4},
                        headers=auth(user)).get_json()["token"]
    client.delete(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    r = client.get(f"/api/exchange-tokens/{token['id']}",
                   headers={**auth(user), "Accept-Language": "fr"})
    error = assert_error(r, 410, "token_expired")
    assert error["message"] == "Ce jeton a été annulé ; ses 4 points ont été rendus au solde."
