"""Bearer tokens (docs/api.md, "Authentication"): HS256, ``exp`` and ``sub`` required,
``roles`` defaulting to ``["user"]``; anything else is refused."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from shared.jwt_tokens import LEEWAY_SECONDS, InvalidToken, TokenVerifier, decode, encode

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


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_still_expires_on_time():
    clock = Clock()
    verifier = TokenVerifier(SECRET, clock=clock)
    token = raw({"sub": "frank", "exp": int(clock.now) + 60, "roles": ["user"]})
    assert verifier.verify(token).sub == "frank"
    clock.now += 60 + LEEWAY_SECONDS - 1  # within the leeway: still good, from memory
    assert verifier.verify(token).sub == "frank"
    clock.now += 2  # past it: refused although remembered
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_the_verifier_remembers_accepted_tokens_only():
    verifier = TokenVerifier(SECRET, capacity=2)
    good = encode(SECRET, "grace")
    forged = encode("another-secret-" + "x" * 64, "grace")
    for _ in range(3):
        assert verifier.verify(good).sub == "grace"
        with pytest.raises(InvalidToken):
            verifier.verify(forged)
    info = verifier._verified.cache_info()
    assert (info.hits, info.currsize) == (2, 1)  # checked once; the forgery every time


def test_a_token_is_verified_against_its_verifiers_secret():
    token = encode(SECRET, "heidi")
    with pytest.raises(InvalidToken):
        TokenVerifier("another-secret-" + "x" * 64).verify(token)


def test_the_verifier_holds_thousands_of_users_in_turn():
    """6,400 users' tokens seen round-robin (the API benchmark's load on one worker, and
    more): every token is checked once, then always remembered. An LRU smaller than
    that misses on every single request."""
    verifier = TokenVerifier(SECRET)
    tokens = [encode(SECRET, f"user-{i}") for i in range(6400)]
    for _ in range(2):
        for token in tokens:
            verifier.verify(token)
    info = verifier._verified.cache_info()
    assert (info.misses, info.hits) == (6400, 6400)


def test_principals_share_one_set_per_combination_of_roles():
    verifier = TokenVerifier(SECRET)
    a = verifier.verify(encode(SECRET, "ann", ["user", "merchant"]))
    b = verifier.verify(encode(SECRET, "bob", ["user", "merchant"]))
    c = verifier.verify(encode(SECRET, "cy", ["admin"]))
    assert a.roles is b.roles and a.roles == {"user", "merchant"}
    assert c.roles == {"admin"}
