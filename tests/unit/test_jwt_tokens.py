"""Bearer tokens (CONTRACT.md, "Authentication"): HS256, ``exp`` and ``sub`` required,
``roles`` defaulting to ``["user"]``; anything else is refused."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from shared.jwt_tokens import LEEWAY_SECONDS, InvalidToken, decode, encode

SECRET = "unit-test-secret-of-a-decent-length-for-hs512-0123456789abcdef-0123"  # noqa: S105


def raw(claims: dict, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return pyjwt.encode(claims, secret, algorithm=algorithm)


def test_a_token_round_trips_with_its_roles():
    principal = decode(SECRET, encode(SECRET, "alice", ["merchant", "admin"]))
    assert principal.sub == "alice"
    assert principal.roles == frozenset({"merchant", "admin"})


def test_encode_without_roles_means_user():
    assert decode(SECRET, encode(SECRET, "bob")).roles == frozenset({"user"})


def test_missing_roles_claim_means_user():
    token = raw({"sub": "carol", "exp": int(time.time()) + 60})
    assert decode(SECRET, token).roles == frozenset({"user"})


def test_exp_is_required():
    with pytest.raises(InvalidToken, match="exp"):
        decode(SECRET, raw({"sub": "dave"}))


def test_sub_is_required_and_must_be_a_non_empty_string():
    exp = int(time.time()) + 60
    with pytest.raises(InvalidToken, match="sub"):
        decode(SECRET, raw({"exp": exp}))
    with pytest.raises(InvalidToken, match="sub"):
        decode(SECRET, raw({"sub": "", "exp": exp}))


def test_a_bad_signature_is_refused():
    with pytest.raises(InvalidToken):
        decode(SECRET, encode("another-secret-" + "x" * 64, "eve"))


def test_an_expired_token_is_refused_beyond_the_leeway():
    token = raw({"sub": "frank", "exp": int(time.time()) - LEEWAY_SECONDS - 5})
    with pytest.raises(InvalidToken, match="expired"):
        decode(SECRET, token)


def test_another_algorithm_is_refused():
    token = raw({"sub": "grace", "exp": int(time.time()) + 60}, algorithm="HS512")
    with pytest.raises(InvalidToken):
        decode(SECRET, token)


def test_garbage_is_refused():
    with pytest.raises(InvalidToken):
        decode(SECRET, "not.a.jwt")


def test_roles_must_be_a_list_of_strings():
    token = raw({"sub": "heidi", "exp": int(time.time()) + 60, "roles": "admin"})
    with pytest.raises(InvalidToken, match="roles"):
        decode(SECRET, token)
