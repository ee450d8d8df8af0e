"""Every bearer token that cannot be used is a 401 whose ``details.reason`` tells a front
end what to do: ``missing`` (log in), ``expired`` (refresh), ``invalid`` (forged or
malformed). Crafted claims that once made the parser or the database fail are 401s too."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.integration.api.test_auth_and_errors import assert_error

ROUTES = (("GET", "/api/accounts/me"), ("POST", "/api/exchange-tokens/"),
          ("GET", "/api/exchange-tokens/status/"))
# Valid for a day: the module is imported when the session starts, and a full run is long.
SOON = int(time.time()) + 86_400


def _bearer(claims, secret=TEST_JWT_SECRET):
    return {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed_raw(payload: bytes, header: bytes = b'{"alg":"HS256","typ":"JWT"}') -> dict:
    """A token signed with the right secret around ``payload`` as given (any JSON)."""
    import hashlib
    import hmac

    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = hmac.new(TEST_JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256)
    return {"Authorization": f"Bearer {signing_input}.{_b64(signature.digest())}"}


CASES = {
    "no header": ({}, "missing"),
    "empty bearer": ({"Authorization": "Bearer "}, "missing"),
    "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing"),
    "expired": (_bearer({"sub": "u", "exp": int(time.time()) - 3600}), "expired"),
    "forged": (_bearer({"sub": "u", "exp": SOON}, secret="x" * 40), "invalid"),
    "garbage": ({"Authorization": "Bearer not.a.jwt"}, "invalid"),
    "sub with NUL": (_bearer({"sub": "a\x00b", "exp": SOON}), "invalid"),
    "sub a lone surrogate": (_signed_raw(b'{"sub":"\\ud800","exp":%d}' % SOON), "invalid"),
    "exp of 400 digits": (_signed_raw(b'{"sub":"u","exp":%s}' % (b"9" * 400)), "invalid"),
    "exp of 400 digits, negative": (_signed_raw(b'{"sub":"u","exp":-%s}' % (b"9" * 400)),
                                    "expired"),
    "deeply nested claims": (_signed_raw(b'{"sub":"u","exp":%d,"x":%s1%s}'
                                         % (SOON, b"[" * 100_000, b"]" * 100_000)), "invalid"),
    "header not JSON": (_signed_raw(json.dumps({"sub": "u", "exp": SOON}).encode(),
                                    header=b"\xff\xfe"), "invalid"),
    "kid of the wrong type": (_signed_raw(json.dumps({"sub": "u", "exp": SOON}).encode(),
                                          header=b'{"alg":"HS256","kid":7}'), "invalid"),
}


@pytest.mark.parametrize(("headers", "reason"), CASES.values(), ids=CASES.keys())
def test_an_unusable_token_is_401_with_its_reason(client, headers, reason):
    for method, path in ROUTES:
        r = client.open(path, method=method, headers=headers, json={"points": 1})
        error = assert_error(r, 401, "unauthorized")
        assert error["details"] == {"reason": reason}, (path, error)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
