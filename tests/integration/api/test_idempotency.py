"""Idempotency-Key on the two creating POSTs: Stripe's semantics, kept in PostgreSQL."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import text

from tests.integration.api.test_auth_and_errors import assert_error


def key() -> str:
    return f"key-{uuid.uuid4()}"


def key_rows(container, caller: str) -> int:
    with container.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM idempotency_keys WHERE caller = :c"),
                            {"c": caller}).scalar_one()


def tokens_of(container, user: str) -> int:
    with container.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM exchange_tokens WHERE user_id = :u"),
                            {"u": user}).scalar_one()


def test_a_replayed_issue_answers_the_first_response_and_debits_once(client, auth, user,
                                                                       credit, balance_of,
                                                                       container):
    credit(user, 100)
    headers = {**auth(user), "Idempotency-Key": key()}
    first = client.post("/api/exchange-tokens/", json={"points": 30}, headers=headers)
    again = client.post("/api/exchange-tokens/", json={"points": 30}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balance_of(user) == 70
    assert tokens_of(container, user) == 1


def test_the_same_key_with_another_body_is_409_idempotency_conflict(client, auth, user, credit,
                                                                      balance_of):
    credit(user, 100)
    headers = {**auth(user), "Idempotency-Key": key()}
    assert client.post("/api/exchange-tokens/", json={"points": 30},
                       headers=headers).status_code == 201
    r = client.post("/api/exchange-tokens/", json={"points": 31}, headers=headers)
    assert_error(r, 409, "idempotency_conflict")
    assert balance_of(user) == 70


def test_keys_are_scoped_to_the_caller(client, auth, credit, balance_of):
    shared_key = key()
    a, b = f"user-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    credit(a, 10)
    credit(b, 10)
    for who in (a, b):
        r = client.post("/api/exchange-tokens/", json={"points": 4},
                        headers={**auth(who), "Idempotency-Key": shared_key})
        assert r.status_code == 201
    assert balance_of(a) == balance_of(b) == 6


def test_a_replayed_credit_credits_once(client, admin, user, balance_of):
    headers = {**admin, "Idempotency-Key": key()}
    for _ in range(3):
        r = client.post(f"/api/accounts/{user}/credits", json={"points": 50}, headers=headers)
        assert r.status_code == 201 and r.get_json() == {"user_id": user, "balance": 50}
    assert balance_of(user) == 50
    r = client.post(f"/api/accounts/{user}-other/credits", json={"points": 50}, headers=headers)
    assert_error(r, 409, "idempotency_conflict")


def test_a_refused_issue_is_a_first_response_too(client, auth, user, credit, container,
                                                 balance_of):
    """The contract: the same key and body answer the first response again and change
    nothing, also when that response was a refusal and would no longer be one."""
    headers = {**auth(user), "Idempotency-Key": key()}
    r = client.post("/api/exchange-tokens/", json={"points": 30}, headers=headers)
    first = assert_error(r, 409, "insufficient_points")
    assert "Idempotent-Replayed" not in r.headers
    assert key_rows(container, user) == 1
    credit(user, 30)
    r = client.post("/api/exchange-tokens/", json={"points": 30}, headers=headers)
    assert assert_error(r, 409, "insufficient_points") == first
    assert r.headers["Idempotent-Replayed"] == "true"
    assert balance_of(user) == 30 and tokens_of(container, user) == 0
    # In the replay's language, the same code and details.
    r = client.post("/api/exchange-tokens/", json={"points": 30},
                    headers={**headers, "Accept-Language": "fr"})
    error = assert_error(r, 409, "insufficient_points")
    assert error["details"] == first["details"] and error["message"] != first["message"]
    # Another body with that key: a conflict, as after any first response.
    r = client.post("/api/exchange-tokens/", json={"points": 5}, headers=headers)
    assert_error(r, 409, "idempotency_conflict")
    assert balance_of(user) == 30


def test_one_key_is_the_callers_on_every_endpoint(client, auth, user, balance_of):
    """A caller with two roles sends one key to both POSTs: one effect, then a conflict
    (keyed per endpoint, both answered 201)."""
    both = auth(user, "admin", "user")
    headers = {**both, "Idempotency-Key": key()}
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 50}, headers=headers)
    assert r.status_code == 201
    r = client.post("/api/exchange-tokens/", json={"points": 7}, headers=headers)
    assert_error(r, 409, "idempotency_conflict")
    assert balance_of(user) == 50


def test_a_refused_issue_still_keeps_the_sweep(client, auth, user, credit, container,
                                               balance_of):
    credit(user, 20)
    token = client.post("/api/exchange-tokens/", json={"points": 20},
                        headers=auth(user)).get_json()["token"]
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second'"
                          " WHERE id = :id"), {"id": token["id"]})
    r = client.post("/api/exchange-tokens/", json={"points": 21},
                    headers={**auth(user), "Idempotency-Key": key()})
    assert_error(r, 409, "insufficient_points")
    assert r.get_json()["error"]["details"]["balance"] == 20  # the sweep ran first
    assert balance_of(user) == 20 and tokens_of(container, user) == 0
    assert key_rows(container, user) == 1  # the refusal, stored with the sweep


def test_invalid_requests_store_no_key(client, auth, user, container):
    headers = {**auth(user), "Idempotency-Key": key()}
    assert client.post("/api/exchange-tokens/", json={"points": 1.5},
                       headers=headers).status_code == 422
    assert client.post("/api/exchange-tokens/", data=b"{", content_type="application/json",
                       headers=headers).status_code == 400
    assert key_rows(container, user) == 0


def test_a_malformed_key_is_422(client, auth, user):
    for bad in ("", "with space", "k" * 256):
        r = client.post("/api/exchange-tokens/", json={"points": 1},
                        headers={**auth(user), "Idempotency-Key": bad})
        assert_error(r, 422, "validation_error")


def test_a_key_older_than_24_hours_is_forgotten(client, auth, user, credit, balance_of,
                                                container):
    credit(user, 100)
    headers = {**auth(user), "Idempotency-Key": key()}
    assert client.post("/api/exchange-tokens/", json={"points": 10},
                       headers=headers).status_code == 201
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                          " WHERE caller = :c"), {"c": user})
    r = client.post("/api/exchange-tokens/", json={"points": 10}, headers=headers)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    assert balance_of(user) == 80


def test_ten_concurrent_requests_with_one_key_make_one_token_and_one_debit(
    app, auth, user, credit, balance_of, container
):
    credit(user, 1000)
    headers = {**auth(user), "Idempotency-Key": key()}
    barrier = threading.Barrier(10)
    answers: list[tuple[int, dict]] = []

    def post() -> None:
        client = app.test_client()  # one client per thread: they share nothing but the app
        barrier.wait()
        r = client.post("/api/exchange-tokens/", json={"points": 100}, headers=headers)
        answers.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 10
    assert {status for status, _ in answers} == {201}
    assert len({body["token"]["id"] for _, body in answers}) == 1
    assert tokens_of(container, user) == 1
    assert balance_of(user) == 900
    with container.engine.connect() as conn:
        debits = conn.execute(text("SELECT count(*) FROM ledger WHERE user_id = :u"
                                   " AND kind = 'debit'"), {"u": user}).scalar_one()
    assert debits == 1
