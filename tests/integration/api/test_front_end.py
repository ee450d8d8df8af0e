"""What a browser front end relies on: CORS for the configured origins only, the QR code
of a token, the merchant's preview, a keyed redeem a till may retry, and the token's
ETag for cheap polling."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text

from api.app import create_app
from shared.bootstrap import Container
from shared.persistence.tables import LedgerEntry, Token
from shared.services.deps import Deps
from tests.integration.api.test_auth_and_errors import assert_error

ALLOWED = "https://wallet.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture(scope="module")
def cors_client(settings, container):
    app = create_app(settings.model_copy(update={"cors_origins": f"{ALLOWED},http://till.local:8080"}),
                     container)
    return app.test_client()


def _token(client, auth, credit, user, points=7):
    credit(user, points)
    r = client.post("/api/exchange-tokens/", json={"points": points}, headers=auth(user))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["token"]


def _preflight(client, origin, method="POST", headers="authorization, content-type, idempotency-key"):
    return client.options("/api/exchange-tokens/redeem/", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


# --- CORS -------------------------------------------------------------------------------

def test_a_preflight_from_an_allowed_origin_gets_methods_headers_and_a_max_age(cors_client):
    r = _preflight(cors_client, ALLOWED,
                   headers="Authorization, Content-Type, Idempotency-Key, Accept-Language")
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "accept-language"} <= allowed
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert "Origin" in r.headers.get("Vary", "")


def test_a_preflight_from_any_other_origin_gets_no_cors_headers(cors_client):
    for origin in (OTHER, "https://wallet.example.com.evil.net", "http://wallet.example.com",
                   "null"):
        r = _preflight(cors_client, origin)
        assert not [h for h in r.headers.keys() if h.lower().startswith("access-control-")], \
            (origin, dict(r.headers))


def test_responses_to_an_allowed_origin_expose_what_a_client_reads(cors_client, auth, user):
    r = cors_client.get("/api/accounts/me", headers={**auth(user), "Origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "x-request-id", "etag"} <= exposed
    # Errors too: an app must read a 401's body and request id.
    r = cors_client.get("/api/accounts/me", headers={"Origin": ALLOWED})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_without_cors_origins_no_origin_gets_cors_headers(client, auth, user):
    r = _preflight(client, ALLOWED)
    assert "Access-Control-Allow-Origin" not in r.headers
    r = client.get("/api/accounts/me", headers={**auth(user), "Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in r.headers


# --- QR codes ---------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (zbar-tools) not installed")
def test_the_png_decodes_to_the_code_and_nothing_else(client, auth, credit, user, tmp_path):
    token = _token(client, auth, credit, user)
    r = client.get(f"/api/exchange-tokens/{token['id']}/qr.png", headers=auth(user))
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.headers["Cache-Control"] == "no-store"
    png = tmp_path / "qr.png"
    png.write_bytes(r.data)
    out = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable",
                          str(png)], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.rstrip("\n") == token["code"]


def test_the_svg_is_an_svg_image_never_cached(client, auth, credit, user):
    token = _token(client, auth, credit, user)
    r = client.get(f"/api/exchange-tokens/{token['id']}/qr.svg", headers=auth(user))
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.data.lstrip().startswith(b"<svg") and b"<path" in r.data
    assert token["code"].encode() not in r.data  # drawn, not written out


def test_the_qr_code_answers_as_the_token_does(client, auth, credit, user):
    token = _token(client, auth, credit, user)
    for kind in ("svg", "png"):
        url = f"/api/exchange-tokens/{token['id']}/qr.{kind}"
        assert_error(client.get(url, headers=auth(user + "-other")), 404, "token_not_found")
        assert_error(client.get(url), 401, "unauthorized")
        assert client.get(f"/api/exchange-tokens/not-a-uuid/qr.{kind}",
                          headers=auth(user)).status_code == 404
    assert client.delete(f"/api/exchange-tokens/{token['id']}", headers=auth(user)).status_code == 200
    for kind in ("svg", "png"):
        error = assert_error(client.get(f"/api/exchange-tokens/{token['id']}/qr.{kind}",
                                        headers=auth(user)), 410, "token_expired")
        assert error["details"] == {"points_restored": 7, "reason": "cancelled"}


# --- preview ----------------------------------------------------------------------------

def _state(container, token_id):
    with container.engine.connect() as conn:
        token = conn.execute(select(Token.status).where(Token.id == token_id)).scalar()
        ledger = conn.execute(select(LedgerEntry.kind).where(
            LedgerEntry.token_id == token_id).order_by(LedgerEntry.kind)).scalars().all()
        outbox = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'token_id' = :t"),
                              {"t": str(token_id)}).scalar()
    return token, ledger, outbox


def test_a_preview_answers_what_redeem_would_and_changes_nothing(
        client, auth, credit, user, merchant, container):
    token = _token(client, auth, credit, user)
    before = _state(container, token["id"])
    m = auth(merchant, "merchant")
    r = client.post("/api/exchange-tokens/redeem/preview/", json={"code": token["code"]}, headers=m)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["user_id"] == user
    assert body["token"]["id"] == token["id"] and body["token"]["status"] == "active"
    assert body["token"]["points"] == 7 and 0 < body["token"]["expires_in"] <= 180
    assert _state(container, token["id"]) == before
    # Previewing again, then redeeming, works as if no preview had been made.
    assert client.post("/api/exchange-tokens/redeem/preview/", json={"code": token["code"]},
                       headers=m).status_code == 200
    redeemed = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]}, headers=m)
    assert redeemed.status_code == 200
    # Once redeemed, the preview says so, as redeem would.
    assert_error(client.post("/api/exchange-tokens/redeem/preview/", json={"code": token["code"]},
                             headers=m), 409, "token_already_redeemed")


def test_a_preview_of_a_cancelled_or_unknown_code_is_refused_as_redeem_would(
        client, auth, credit, user, merchant):
    token = _token(client, auth, credit, user)
    client.delete(f"/api/exchange-tokens/{token['id']}", headers=auth(user))
    m = auth(merchant, "merchant")
    error = assert_error(client.post("/api/exchange-tokens/redeem/preview/",
                                     json={"code": token["code"]}, headers=m), 410, "token_expired")
    assert error["details"] == {"points_restored": 7, "reason": "cancelled"}
    assert_error(client.post("/api/exchange-tokens/redeem/preview/", json={"code": "NOPE"},
                             headers=m), 404, "token_not_found")
    assert_error(client.post("/api/exchange-tokens/redeem/preview/", json={"code": "x"},
                             headers=auth(user)), 403, "forbidden")
    assert_error(client.post("/api/exchange-tokens/redeem/preview/", json={"code": "x" * 129},
                             headers=m), 422, "validation_error")


def test_a_preview_past_expiry_answers_410_and_refunds_nothing_itself(
        client, auth, credit, user, merchant, container):
    token = _token(client, auth, credit, user)
    with container.engine.begin() as conn:  # as if its lifetime had run out
        conn.execute(text("UPDATE exchange_tokens SET expires_at = now() - interval '1 second',"
                          " created_at = now() - interval '1 minute' WHERE id = :id"),
                     {"id": token["id"]})
    error = assert_error(client.post("/api/exchange-tokens/redeem/preview/",
                                     json={"code": token["code"]},
                                     headers=auth(merchant, "merchant")), 410, "token_expired")
    assert error["details"] == {"points_restored": 7, "reason": "expired"}
    assert _state(container, token["id"])[:2] == ("active", ["debit"])


def _limited_client(settings, container, limit):
    deps = Deps(session_factory=container.deps.session_factory, clock=container.deps.clock,
                token_ttl_seconds=180, max_active_tokens=10, redeem_failures_per_minute=limit)
    return create_app(settings, Container(settings=settings, engine=container.engine,
                                          deps=deps)).test_client()


def test_failed_previews_count_toward_the_redeem_failure_limit(settings, container, auth, merchant):
    client = _limited_client(settings, container, limit=3)
    m = auth(merchant, "merchant")
    for i in range(2):
        assert client.post("/api/exchange-tokens/redeem/preview/", json={"code": f"G{i}"},
                           headers=m).status_code == 404
    assert client.post("/api/exchange-tokens/redeem/", json={"code": "G2"},
                       headers=m).status_code == 404
    for path in ("/api/exchange-tokens/redeem/preview/", "/api/exchange-tokens/redeem/"):
        r = client.post(path, json={"code": "G3"}, headers=m)
        assert_error(r, 429, "too_many_attempts")
        assert int(r.headers["Retry-After"]) >= 1


def test_concurrent_failed_previews_never_answer_more_404s_than_the_limit(
        settings, container, auth, merchant):
    client = _limited_client(settings, container, limit=4)
    m = auth(merchant, "merchant")

    def guess(i):
        return client.post("/api/exchange-tokens/redeem/preview/", json={"code": f"C{i}"},
                           headers=m).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(guess, range(16)))
    assert codes.count(404) == 4 and codes.count(429) == 12, codes


# --- keyed redeem -----------------------------------------------------------------------

def test_a_till_retrying_its_keyed_redeem_gets_its_own_answer_again(
        client, auth, credit, user, merchant, balance_of):
    token = _token(client, auth, credit, user)
    m = {**auth(merchant, "merchant"), "Idempotency-Key": "till-7-sale-1"}
    first = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]}, headers=m)
    assert first.status_code == 200
    again = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]}, headers=m)
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # Without the key (or with another), the truth: already redeemed.
    other = {**auth(merchant, "merchant"), "Idempotency-Key": "till-7-sale-2"}
    assert_error(client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]},
                             headers=other), 409, "token_already_redeemed")
    # The same key with another code is a conflict, not a second effect.
    assert_error(client.post("/api/exchange-tokens/redeem/", json={"code": "ANOTHER"}, headers=m),
                 409, "idempotency_conflict")
    assert balance_of(user) == 0


def test_concurrent_retries_of_one_keyed_redeem_redeem_once_and_all_succeed(
        client, auth, credit, user, merchant, container):
    token = _token(client, auth, credit, user)
    m = {**auth(merchant, "merchant"), "Idempotency-Key": "till-retry-storm"}

    def send(_):
        r = client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]}, headers=m)
        return r.status_code, r.get_json()

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert {status for status, _ in answers} == {200}, answers
    assert len({str(body) for _, body in answers}) == 1
    with container.engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM outbox WHERE payload->>'token_id' = :t"
                                   " AND event_type = 'TokenRedeemed'"),
                              {"t": token["id"]}).scalar()
    assert events == 1


def test_a_keyed_unknown_code_counts_once_however_often_it_is_retried(
        settings, container, auth, merchant):
    client = _limited_client(settings, container, limit=2)
    m = {**auth(merchant, "merchant"), "Idempotency-Key": "k-unknown"}
    for _ in range(4):  # one failure stored and counted, then replayed
        assert_error(client.post("/api/exchange-tokens/redeem/", json={"code": "U1"}, headers=m),
                     404, "token_not_found")
    plain = auth(merchant, "merchant")
    assert client.post("/api/exchange-tokens/redeem/", json={"code": "U2"},
                       headers=plain).status_code == 404
    assert_error(client.post("/api/exchange-tokens/redeem/", json={"code": "U3"}, headers=plain),
                 429, "too_many_attempts")


# --- ETag -------------------------------------------------------------------------------

def test_polling_a_token_answers_304_until_it_is_redeemed(client, auth, credit, user, merchant):
    token = _token(client, auth, credit, user)
    url = f"/api/exchange-tokens/{token['id']}"
    first = client.get(url, headers=auth(user))
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    polled = client.get(url, headers={**auth(user), "If-None-Match": etag})
    assert polled.status_code == 304 and polled.data == b""
    assert polled.headers["ETag"] == etag
    assert client.get(url, headers={**auth(user), "If-None-Match": '"other", ' + etag}
                      ).status_code == 304
    client.post("/api/exchange-tokens/redeem/", json={"code": token["code"]},
                headers=auth(merchant, "merchant"))
    changed = client.get(url, headers={**auth(user), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["status"] == "redeemed"
    assert changed.headers["ETag"] != etag


def test_a_cancelled_token_answers_410_not_304(client, auth, credit, user):
    token = _token(client, auth, credit, user)
    url = f"/api/exchange-tokens/{token['id']}"
    etag = client.get(url, headers=auth(user)).headers["ETag"]
    client.delete(url, headers=auth(user))
    assert_error(client.get(url, headers={**auth(user), "If-None-Match": etag}), 410,
                 "token_expired")


def test_another_users_etag_gets_no_304_for_a_token_they_do_not_own(client, auth, credit, user):
    token = _token(client, auth, credit, user)
    url = f"/api/exchange-tokens/{token['id']}"
    etag = client.get(url, headers=auth(user)).headers["ETag"]
    assert_error(client.get(url, headers={**auth(user + "-x"), "If-None-Match": etag}), 404,
                 "token_not_found")


def test_previews_racing_a_redeem_change_nothing_and_see_active_or_redeemed(
        client, auth, credit, user, merchant, container):
    token = _token(client, auth, credit, user)
    m = auth(merchant, "merchant")

    def send(i):
        path = "/api/exchange-tokens/redeem/" if i == 5 else "/api/exchange-tokens/redeem/preview/"
        r = client.post(path, json={"code": token["code"]}, headers=m)
        return path, r.status_code

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(12)))
    assert ("/api/exchange-tokens/redeem/", 200) in answers
    assert {status for path, status in answers if path.endswith("preview/")} <= {200, 409}
    status, ledger, outbox = _state(container, token["id"])
    assert (status, ledger) == ("redeemed", ["debit"])


def test_the_openapi_document_describes_the_front_end_routes(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "post" in paths["/api/exchange-tokens/redeem/preview/"]
    qr = paths["/api/exchange-tokens/{token_id}/qr.{kind}"]["get"]
    kind = next(p for p in qr["parameters"] if p["name"] == "kind")
    assert kind["schema"]["enum"] == ["svg", "png"]
    redeem_headers = {p["name"] for p in paths["/api/exchange-tokens/redeem/"]["post"]
                      .get("parameters", []) if p["in"] == "header"}
    assert "Idempotency-Key" in redeem_headers
    read_headers = {p["name"] for p in paths["/api/exchange-tokens/{token_id}"]["get"]
                    .get("parameters", []) if p["in"] == "header"}
    assert "If-None-Match" in read_headers
