"""Every route of the contract, through the Flask test client on real PostgreSQL."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import text

from api.metrics import METHODS
from shared.logs import request_id_var

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TOKEN_FIELDS = {"id", "code", "points", "reward", "status", "created_at", "expires_at",
                "expires_in"}


def issue(client, headers, points, **body):
    return client.post("/api/exchange-tokens/", json={"points": points, **body}, headers=headers)


def test_an_admin_credit_answers_201_with_the_new_balance(client, admin, user):
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 70, "reason": "welcome"},
                    headers=admin)
    assert r.status_code == 201
    assert r.get_json() == {"user_id": user, "balance": 70}
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 5}, headers=admin)
    assert r.get_json() == {"user_id": user, "balance": 75}


def test_a_new_user_reads_a_zero_balance(client, auth, user):
    r = client.get("/api/accounts/me", headers=auth(user))
    assert r.status_code == 200
    assert r.get_json() == {"user_id": user, "balance": 0}


def test_issuing_debits_at_once_and_answers_the_token(client, auth, user, credit):
    credit(user, 100)
    r = issue(client, auth(user), 30, reward="coffee")
    assert r.status_code == 201
    body = r.get_json()
    assert body["balance"] == 70
    token = body["token"]
    assert set(token) == TOKEN_FIELDS
    assert token["points"] == 30 and token["reward"] == "coffee" and token["status"] == "active"
    assert 178 <= token["expires_in"] <= 180
    for field in ("created_at", "expires_at"):
        assert RFC3339_UTC.match(token[field]), token[field]
    uuid.UUID(token["id"])


def test_issuing_more_than_the_balance_is_409_insufficient_points(client, auth, user,
                                                                     credit, balance_of):
    credit(user, 10)
    r = issue(client, auth(user), 11)
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "insufficient_points"
    assert balance_of(user) == 10


def test_too_many_active_tokens_is_409(client, auth, user, credit, settings):
    credit(user, 1000)
    for _ in range(settings.max_active_tokens):
        assert issue(client, auth(user), 1).status_code == 201
    r = issue(client, auth(user), 1)
    assert r.status_code == 409
    assert r.get_json()["error"] == {
        "code": "too_many_active_tokens",
        "message": f"Too many active tokens (at most {settings.max_active_tokens}).",
        "details": {"limit": settings.max_active_tokens},
    }


def test_status_lists_active_tokens_soonest_expiry_first(client, auth, user, credit):
    credit(user, 100)
    first = issue(client, auth(user), 10).get_json()["token"]
    second = issue(client, auth(user), 20).get_json()["token"]
    r = client.get("/api/exchange-tokens/status/", headers=auth(user))
    assert r.status_code == 200
    body = r.get_json()
    assert body["balance"] == 70
    assert [t["id"] for t in body["active"]] == [first["id"], second["id"]]
    assert body["redeemed"] == [] and body["restored"] == []


def test_status_restores_expired_tokens_before_answering(client, auth, user, credit,
                                                          container):
    credit(user, 50)
    token = issue(client, auth(user), 20).get_json()["token"]
    with container.engine.begin() as conn:  # as if its lifetime had run out
        conn.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second'"
                          " WHERE id = :id"), {"id": token["id"]})
    body = client.get("/api/exchange-tokens/status/", headers=auth(user)).get_json()
    assert body["active"] == []
    assert body["balance"] == 50
    [restored] = body["restored"]
    assert restored["token_id"] == token["id"] and restored["points"] == 20
    assert restored["reason"] == "expired" and RFC3339_UTC.match(restored["restored_at"])


def test_the_owner_reads_a_token_and_another_user_gets_404(client, auth, user, credit):
    credit(user, 10)
    token = issue(client, auth(user), 5).get_json()["token"]
    r = client.get(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    assert r.status_code == 200
    assert r.get_json()["id"] == token["id"]
    r = client.get(f"/api/exchange-tokens/{token['id']}", headers=auth("someone-else"))
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "token_not_found"
    r = client.delete(f"/api/exchange-tokens/{token['id']}", headers=auth("someone-else"))
    assert r.status_code == 404


def test_an_unknown_or_malformed_token_id_is_404_token_not_found(client, auth, user):
    for token_id in (str(uuid.uuid4()), "not-a-uuid"):
        r = client.get(f"/api/exchange-tokens/{token_id}", headers=auth(user))
        assert r.status_code == 404
        assert r.get_json()["error"]["code"] == "token_not_found"
        assert client.delete(f"/api/exchange-tokens/{token_id}",
                             headers=auth(user)).status_code == 404


def test_cancelling_restores_the_points_and_then_the_token_is_410(client, auth, user, credit):
    credit(user, 40)
    token = issue(client, auth(user), 15).get_json()["token"]
    r = client.delete(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    assert r.status_code == 200
    assert r.get_json() == {"token_id": token["id"], "points_restored": 15, "balance": 40}
    for method in (client.get, client.delete):
        r = method(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
        assert r.status_code == 410
        error = r.get_json()["error"]
        assert error["code"] == "token_expired"
        assert error["details"] == {"points_restored": 15, "reason": "cancelled"}
        assert "restored" in error["message"]


def test_a_token_past_its_expiry_answers_410_at_once(client, auth, user, credit, container,
                                                      merchant):
    credit(user, 40)
    token = issue(client, auth(user), 25).get_json()["token"]
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second'"
                          " WHERE id = :id"), {"id": token["id"]})
    r = client.get(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    assert r.status_code == 410
    assert r.get_json()["error"]["details"] == {"points_restored": 25, "reason": "expired"}
    r = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]},
                    headers=auth(merchant, "merchant"))
    assert r.status_code == 410
    assert "restored" in r.get_json()["error"]["message"]


def test_a_merchant_redeems_a_code_once(client, auth, user, credit, merchant):
    credit(user, 40)
    token = issue(client, auth(user), 25, reward="tea").get_json()["token"]
    r = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]},
                    headers=auth(merchant, "merchant"))
    assert r.status_code == 200
    body = r.get_json()
    assert body["user_id"] == user
    assert body["token"]["status"] == "redeemed" and body["token"]["expires_in"] == 0
    assert set(body["token"]) == TOKEN_FIELDS | {"redeemed_at"}
    assert RFC3339_UTC.match(body["token"]["redeemed_at"])
    again = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]},
                        headers=auth(merchant, "merchant"))
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "token_already_redeemed"
    r = client.delete(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "token_already_redeemed"
    status = client.get("/api/exchange-tokens/status/", headers=auth(user)).get_json()
    assert [t["id"] for t in status["redeemed"]] == [token["id"]]


def test_redeeming_an_unknown_code_is_404(client, auth, merchant):
    r = client.post("/api/exchange-tokens/redeem/", json={"code": "NO-SUCH-CODE"},
                    headers=auth(merchant, "merchant"))
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "token_not_found"


def test_exchange_requests_list_the_users_own_newest_first(client, auth, user, deps):
    from datetime import UTC, datetime, timedelta

    from tests.support.planted import plant_exchange_request

    base = datetime(2030, 1, 1, tzinfo=UTC)
    ids = [uuid.uuid4(), uuid.uuid4()]
    for i, token_id in enumerate(ids):
        plant_exchange_request(
            deps.engine, token_id=token_id, user_id=user, points=5 + i, merchant_id="m-1",
            reward="r", created_at=base + timedelta(minutes=i))
    r = client.get("/api/exchange-requests/", headers=auth(user))
    assert r.status_code == 200
    body = r.get_json()
    assert [e["token_id"] for e in body] == [str(ids[1]), str(ids[0])]
    assert set(body[0]) == {"id", "token_id", "points", "reward", "merchant_id", "created_at"}
    assert body[0]["created_at"] == "2030-01-01T00:01:00.000000Z"
    assert client.get("/api/exchange-requests/", headers=auth("another")).get_json() == []


def test_paths_work_with_and_without_the_trailing_slash_without_redirects(
    client, auth, user, credit
):
    credit(user, 10)
    assert issue(client, auth(user), 1).status_code == 201
    r = client.post("/api/exchange-tokens", json={"points": 1}, headers=auth(user))
    assert r.status_code == 201
    for path in ("/api/exchange-tokens/status", "/api/exchange-requests", "/api/accounts/me/",
                 "/healthz/"):
        assert client.get(path, headers=auth(user)).status_code == 200, path


def test_health_is_200(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}


def test_readiness_is_200_when_database_and_broker_answer(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def _counter(client, name):
    body = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_by_route_and_tokens_issued_redeemed_cancelled(
    client, auth, user, credit, merchant
):
    credit(user, 10)
    before = {n: _counter(client, n) for n in ("exchange_tokens_tokens_issued_total", "exchange_tokens_tokens_redeemed_total",
                                               "exchange_tokens_tokens_cancelled_total")}
    kept = issue(client, auth(user), 2).get_json()["token"]
    dropped = issue(client, auth(user), 3).get_json()["token"]
    client.post("/api/exchange-tokens/redeem/", json={"code": kept["code"]},
                headers=auth(merchant, "merchant"))
    client.delete(f"/api/exchange-tokens/{dropped['id']}", headers=auth(user))
    assert _counter(client, "exchange_tokens_tokens_issued_total") == before["exchange_tokens_tokens_issued_total"] + 2
    assert _counter(client, "exchange_tokens_tokens_redeemed_total") == before["exchange_tokens_tokens_redeemed_total"] + 1
    assert _counter(client, "exchange_tokens_tokens_cancelled_total") == before["exchange_tokens_tokens_cancelled_total"] + 1
    body = client.get("/metrics").get_data(as_text=True)
    assert 'exchange_tokens_http_requests_total{method="POST",route="/api/exchange-tokens/",status="201"}' in body
    assert ('http_request_duration_seconds_bucket{le="0.05",method="DELETE",'
            'route="/api/exchange-tokens/<token_id>",status="200"}') in body


def test_request_metrics_count_each_answer_and_fold_unknown_methods(client, auth, user):
    def count(method, route, status):
        return _counter(client, "exchange_tokens_http_requests_total"
                        rf'\{{method="{method}",route="{re.escape(route)}",status="{status}"\}}')

    before = count("GET", "/api/accounts/me", 200)
    for _ in range(3):
        client.get("/api/accounts/me", headers=auth(user))
    assert count("GET", "/api/accounts/me", 200) == before + 3
    before = count("other", "unmatched", 405)
    for verb in ("BREW", "PROPFIND", "X-ANYTHING"):
        assert client.open("/api/accounts/me", method=verb).status_code == 405
    assert count("other", "unmatched", 405) == before + 3
    body = client.get("/metrics").get_data(as_text=True)
    assert "BREW" not in body and "PROPFIND" not in body
    # ... nor anywhere else: the app keeps one entry per label set, not per verb seen.
    seen = {m for m, _, _ in client.application.extensions["metrics"]._children}
    assert seen <= METHODS | {"other"}


def test_openapi_describes_every_route_of_the_contract(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["openapi"].startswith("3.")
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert operations >= {
        ("POST", "/api/accounts/{user_id}/credits"), ("GET", "/api/accounts/me"),
        ("POST", "/api/exchange-tokens/"), ("GET", "/api/exchange-tokens/status/"),
        ("GET", "/api/exchange-tokens/{token_id}"), ("DELETE", "/api/exchange-tokens/{token_id}"),
        ("POST", "/api/exchange-tokens/redeem/"), ("GET", "/api/exchange-requests/"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
        ("GET", "/api/openapi.json"),
    }
    redeem = doc["paths"]["/api/exchange-tokens/redeem/"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "410", "422", "429", "503"} <= set(redeem)
    assert client.get("/apidoc/swagger/").status_code == 200


def test_every_response_carries_a_request_id_and_keeps_a_sane_one(client):
    assert re.match(r"^[0-9a-f]{32}$", client.get("/healthz").headers["X-Request-ID"])
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["X-Request-ID"] != "bad id\twith spaces"


def test_a_request_id_is_unbound_after_the_request(client, auth, user):
    """Reset on teardown, whatever the answer: a thread that serves the next request (or
    logs outside one) must not carry the last request's id. (That it is bound during the
    request: the outbox test below.)"""
    assert client.get("/healthz", headers={"X-Request-ID": "rid-a"}).status_code == 200
    assert request_id_var.get() is None
    r = client.post("/api/exchange-tokens/", data="{", headers={**auth(user), "X-Request-ID": "rid-b"})
    assert r.status_code == 400
    assert request_id_var.get() is None


def test_the_request_id_reaches_the_outbox_event(client, auth, user, credit, container):
    credit(user, 10)
    r = client.post("/api/exchange-tokens/", json={"points": 3},
                    headers={**auth(user), "X-Request-ID": f"req-{user}"})
    token_id = r.get_json()["token"]["id"]
    with container.engine.connect() as conn:
        headers = conn.execute(text(
            "SELECT headers FROM outbox WHERE payload->>'token_id' = :t"), {"t": token_id}
        ).scalar_one()
    assert headers["x-request-id"] == f"req-{user}"


def test_reads_other_than_status_change_nothing_even_for_an_expired_token(client, auth, user,
                                                                          credit, container):
    credit(user, 30)
    token = issue(client, auth(user), 30).get_json()["token"]
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second'"
                          " WHERE id = :id"), {"id": token["id"]})
    # GET of the token answers 410 (the refund is certain) but applies nothing...
    assert client.get(f"/api/exchange-tokens/{token['id']}", headers=auth(user)).status_code == 410
    assert client.get("/api/accounts/me", headers=auth(user)).get_json()["balance"] == 0
    client.get("/api/exchange-requests/", headers=auth(user))
    assert client.get("/api/accounts/me", headers=auth(user)).get_json()["balance"] == 0
    # ...while status sweeps first.
    assert client.get("/api/exchange-tokens/status/",
                      headers=auth(user)).get_json()["balance"] == 30
