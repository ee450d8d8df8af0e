"""A merchant presenting unknown codes gets 429 once over the per-minute limit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from api.app import create_app
from shared.bootstrap import Container
from shared.services.deps import Deps
from tests.integration.api.test_auth_and_errors import assert_error


def limited_app(settings, container, limit):
    deps = Deps(session_factory=container.deps.session_factory, clock=container.deps.clock,
                token_ttl_seconds=180, max_active_tokens=10, redeem_failures_per_minute=limit)
    return create_app(settings, Container(settings=settings, engine=container.engine,
                                          deps=deps))


def redeem(client, headers, code):
    return client.post("/api/exchange-tokens/redeem/", json={"code": code}, headers=headers)


def test_unknown_codes_over_the_limit_answer_429_before_touching_any_token(
    settings, container, auth, merchant, user
):
    client = limited_app(settings, container, limit=3).test_client()
    m = auth(merchant, "merchant")
    for i in range(3):
        assert redeem(client, m, f"GUESS-{i}").status_code == 404
    # Given a real, valid code, the blocked merchant still gets 429 and the token stays active.
    admin = auth("admin-x", "admin")
    client.post(f"/api/accounts/{user}/credits", json={"points": 5}, headers=admin)
    token = client.post("/api/exchange-tokens/", json={"points": 5},
                        headers=auth(user)).get_json()["token"]
    r = redeem(client, m, token["code"])
    error = assert_error(r, 429, "too_many_attempts")
    assert error["details"]["limit"] == 3
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert client.get(f"/api/exchange-tokens/{token['id']}",
                      headers=auth(user)).get_json()["status"] == "active"
    # Another merchant is not affected.
    assert redeem(client, auth(merchant + "-b", "merchant"), token["code"]).status_code == 200


def test_already_redeemed_and_expired_codes_do_not_count(settings, container, auth, merchant,
                                                         user):
    client = limited_app(settings, container, limit=2).test_client()
    m = auth(merchant, "merchant")
    admin = auth("admin-x", "admin")
    client.post(f"/api/accounts/{user}/credits", json={"points": 5}, headers=admin)
    token = client.post("/api/exchange-tokens/", json={"points": 5},
                        headers=auth(user)).get_json()["token"]
    assert redeem(client, m, token["code"]).status_code == 200
    for _ in range(4):
        assert redeem(client, m, token["code"]).status_code == 409
    with container.engine.connect() as conn:
        counted = conn.execute(
            text("SELECT coalesce(sum(failures), 0) FROM redeem_failures WHERE merchant_id = :m"),
            {"m": merchant}).scalar_one()
    assert counted == 0
    # Still allowed its two failures.
    assert [redeem(client, m, f"GUESS-{i}").status_code for i in range(3)] == [404, 404, 429]


def test_guesses_sent_all_at_once_get_exactly_the_limit_of_404s(settings, container, auth,
                                                                 merchant):
    """The count is one conditional upsert, and a guess it finds no room for answers 429:
    twenty guesses in flight together cannot all get a 404 under a limit of five
    (counted unconditionally after the check, they did)."""
    app = limited_app(settings, container, limit=5)
    m = auth(merchant, "merchant")
    start = threading.Barrier(20)

    def guess(i):
        client = app.test_client()
        start.wait()
        return redeem(client, m, f"GUESS-{i}").status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(guess, range(20)))
    assert statuses == [404] * 5 + [429] * 15


def test_valid_codes_in_flight_together_never_use_up_the_allowance(settings, container, auth,
                                                                  merchant, user):
    """Only unknown codes count: a busy merchant redeeming many codes at once is never
    refused for it."""
    app = limited_app(settings, container, limit=2)
    client = app.test_client()
    client.post(f"/api/accounts/{user}/credits", json={"points": 10},
                headers=auth("admin-x", "admin"))
    codes = [client.post("/api/exchange-tokens/", json={"points": 1},
                         headers=auth(user)).get_json()["token"]["code"] for _ in range(8)]
    m = auth(merchant, "merchant")
    start = threading.Barrier(len(codes))

    def redeem_one(code):
        start.wait()
        return redeem(app.test_client(), m, code).status_code

    with ThreadPoolExecutor(len(codes)) as pool:
        assert list(pool.map(redeem_one, codes)) == [200] * len(codes)
