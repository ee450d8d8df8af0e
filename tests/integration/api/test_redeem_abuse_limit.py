"""A merchant presenting unknown codes gets 429 once over the per-minute limit."""

from __future__ import annotations

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
        rows = conn.execute(text("SELECT count(*) FROM redeem_failures WHERE merchant_id = :m"),
                            {"m": merchant}).scalar_one()
    assert rows == 0


def test_failures_are_counted_by_an_atomic_upsert_per_minute_window(deps, merchant):
    from shared.services import abuse

    counts = [abuse.record_redeem_failure(deps, merchant) for _ in range(3)]
    assert counts == [1, 2, 3]
