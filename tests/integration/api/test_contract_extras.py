"""Contract statements the other API tests leave uncovered: the list limits, what a deleted
or past-expiry token's code answers at redeem, the merchant id of an exchange request end to
end (API, relay, worker), the metrics' media type, and malformed JSON on the credit route."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.integration.api.test_auth_and_errors import assert_error
from tests.integration.workers import conftest as worker_fixtures
from tests.support.workers import wait_until

# The worker tests' fixtures, for the one test here that runs a worker (module attributes,
# not imports: pytest finds them by name, and nothing shadows an imported name).
broker = worker_fixtures.broker
topology = worker_fixtures.topology
start_worker = worker_fixtures.start_worker

STATUS = "/api/exchange-tokens/status/"
REDEEM = "/api/exchange-tokens/redeem/"


def issue(client, headers, points=1):
    r = client.post("/api/exchange-tokens/", json={"points": points}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["token"]


def expire_now(container, token_id):
    """As if the token's lifetime had run out (the database's clock decides)."""
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second'"
                          " WHERE id = :id"), {"id": token_id})


def token_row_exists(container, token_id) -> bool:
    with container.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM exchange_tokens WHERE id = :id"),
                            {"id": token_id}).scalar_one() == 1


def refund_rows(container, token_id) -> int:
    with container.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM ledger WHERE kind = 'refund'"
                                 " AND token_id = :id"), {"id": token_id}).scalar_one()


# --- GET /api/exchange-requests/: the 100 latest, newest first ---------------------------

def test_exchange_requests_list_only_the_100_latest_newest_first(client, auth, user, deps):
    from tests.support.planted import plant_exchange_request

    base = datetime(2030, 6, 1, tzinfo=UTC)
    token_ids = [uuid.uuid4() for _ in range(105)]
    # Inserted in an order that is neither oldest- nor newest-first, so the answer's order
    # comes from created_at and not from insertion.
    order = list(range(105))
    order = order[::2] + order[1::2]
    for i in order:
        plant_exchange_request(
            deps.engine, token_id=token_ids[i], user_id=user, points=1 + i, merchant_id="m-1",
            created_at=base + timedelta(seconds=i))
    r = client.get("/api/exchange-requests/", headers=auth(user))
    assert r.status_code == 200
    body = r.get_json()
    assert len(body) == 100
    # The newest 100 (the 5 oldest left out), newest first.
    assert [e["token_id"] for e in body] == [str(t) for t in reversed(token_ids[5:])]
    assert body[0]["created_at"] == "2030-06-01T00:01:44.000000Z"
    assert body[-1]["created_at"] == "2030-06-01T00:00:05.000000Z"


# --- GET /api/exchange-tokens/status/: the 20 latest redeemed and restored ---------------

def test_status_over_http_lists_only_the_20_latest_redeemed_and_restored(
    client, auth, user, credit, merchant, container
):
    credit(user, 100)
    redeemed = []
    for _ in range(22):  # each redeem its own transaction: distinct redeemed_at
        token = issue(client, auth(user))
        r = client.post(REDEEM, json={"code": token["code"]}, headers=auth(merchant, "merchant"))
        assert r.status_code == 200
        redeemed.append(token["id"])
    restored = []
    for i in range(22):  # cancelled and expired in turn, each restored on its own
        token = issue(client, auth(user))
        if i % 2:
            expire_now(container, token["id"])
            assert client.get(STATUS, headers=auth(user)).status_code == 200  # sweeps it
        else:
            assert client.delete(f"/api/exchange-tokens/{token['id']}",
                                 headers=auth(user)).status_code == 200
        restored.append((token["id"], "expired" if i % 2 else "cancelled"))
    r = client.get(STATUS, headers=auth(user))
    assert r.status_code == 200
    body = r.get_json()
    assert body["balance"] == 100 - 22
    assert body["active"] == []
    assert [t["id"] for t in body["redeemed"]] == list(reversed(redeemed[2:]))
    assert all(t["status"] == "redeemed" for t in body["redeemed"])
    assert [(x["token_id"], x["reason"]) for x in body["restored"]] == list(
        reversed(restored[2:]))
    times = [x["restored_at"] for x in body["restored"]]
    assert times == sorted(times, reverse=True)


# --- POST /api/exchange-tokens/redeem/ of a deleted or past-expiry token ------------------

@pytest.mark.parametrize("fate", ["cancelled", "expired"])
def test_redeeming_the_code_of_a_deleted_token_is_410_with_what_was_restored(
    client, auth, user, credit, balance_of, merchant, container, fate
):
    credit(user, 50)
    token = issue(client, auth(user), 20)
    if fate == "cancelled":
        assert client.delete(f"/api/exchange-tokens/{token['id']}",
                             headers=auth(user)).status_code == 200
    else:
        expire_now(container, token["id"])
        client.get(STATUS, headers=auth(user))  # the sweep restores and deletes it
    assert not token_row_exists(container, token["id"])
    assert balance_of(user) == 50
    for _ in range(2):
        r = client.post(REDEEM, json={"code": token["code"]}, headers=auth(merchant, "merchant"))
        error = assert_error(r, 410, "token_expired")
        assert error["details"] == {"points_restored": 20, "reason": fate}
        assert "restored" in error["message"]
    # Answering changed nothing: still one refund, the same balance.
    assert refund_rows(container, token["id"]) == 1
    assert balance_of(user) == 50


def test_redeeming_past_expiry_is_410_and_applies_the_refund_right_there(
    client, auth, user, credit, balance_of, merchant, container
):
    credit(user, 40)
    token = issue(client, auth(user), 25)
    other = issue(client, auth(user), 5)  # expired too: the redeem's sweep takes it as well
    for t in (token, other):
        expire_now(container, t["id"])
    assert balance_of(user) == 10  # nothing restored yet (GET changes nothing)
    r = client.post(REDEEM, json={"code": token["code"]}, headers=auth(merchant, "merchant"))
    error = assert_error(r, 410, "token_expired")
    assert error["details"] == {"points_restored": 25, "reason": "expired"}
    # The refund was applied by the redeem itself (no worker runs here), once.
    assert balance_of(user) == 40
    assert refund_rows(container, token["id"]) == 1
    assert not token_row_exists(container, token["id"])
    again = client.post(REDEEM, json={"code": token["code"]}, headers=auth(merchant, "merchant"))
    assert assert_error(again, 410, "token_expired")["details"] == {
        "points_restored": 25, "reason": "expired"}
    assert balance_of(user) == 40
    assert refund_rows(container, token["id"]) == 1


# --- merchant_id end to end ---------------------------------------------------------------

def test_an_exchange_request_carries_the_redeeming_merchants_sub_end_to_end(
    client, auth, user, credit, start_worker
):
    # Given two merchants, each redeeming one token through the API
    credit(user, 10)
    merchants = [f"shop-{uuid.uuid4().hex[:8]}", f"kiosk-{uuid.uuid4().hex[:8]}"]
    by_token = {}
    for merchant in merchants:
        token = issue(client, auth(user), 3)
        r = client.post(REDEEM, json={"code": token["code"]}, headers=auth(merchant, "merchant"))
        assert r.status_code == 200
        by_token[token["id"]] = merchant
    assert client.get("/api/exchange-requests/", headers=auth(user)).get_json() == []
    # When the relay publishes TokenRedeemed and the worker makes the exchange requests
    start_worker(roles=["relay", "exchange-requests"])

    def listed():
        body = client.get("/api/exchange-requests/", headers=auth(user)).get_json()
        return body if len(body) == 2 else None

    body = wait_until(listed, timeout=8)
    # Then each request names the merchant (JWT sub) that redeemed its token
    assert {e["token_id"]: e["merchant_id"] for e in body} == by_token
    assert all(e["points"] == 3 for e in body)


# --- GET /metrics: Prometheus text format ------------------------------------------------

def test_metrics_are_served_in_the_prometheus_text_format(client):
    client.get("/healthz")  # at least one request counted
    r = client.get("/metrics")
    assert r.status_code == 200
    # text/plain with the exposition format's version (0.0.4, or 1.0.0 as recent
    # prometheus_client versions send: the same text format), UTF-8 (the format's only
    # encoding, when a charset is given at all); not OpenMetrics, not JSON.
    assert r.mimetype == "text/plain", r.content_type
    assert r.mimetype_params.get("version") in {"0.0.4", "1.0.0"}, r.content_type
    assert r.mimetype_params.get("charset", "utf-8").lower() == "utf-8", r.content_type
    families = {f.name for f in text_string_to_metric_families(r.get_data(as_text=True))}
    assert "exchange_tokens_http_requests" in families


# --- POST /api/accounts/<user_id>/credits: malformed JSON ---------------------------------

@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b"{'points': 1}", b'{"points": NaN}',
                                 b"\xff\xfe", b"[" * 10_000])
def test_malformed_json_on_a_credit_is_400_bad_request_and_credits_nothing(
    client, admin, user, credit, balance_of, raw
):
    credit(user, 10)
    r = client.post(f"/api/accounts/{user}/credits", data=raw, content_type="application/json",
                    headers=admin)
    assert_error(r, 400, "bad_request")
    assert balance_of(user) == 10
    # ...and stores nothing under an Idempotency-Key: the key stays free for a valid body.
    key = {**admin, "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    r = client.post(f"/api/accounts/{user}/credits", data=raw, content_type="application/json",
                    headers=key)
    assert_error(r, 400, "bad_request")
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 5}, headers=key)
    assert r.status_code == 201 and r.get_json()["balance"] == 15
