"""Language choice, message rendering, time format and request fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask

from api.idempotency import fingerprint
from api.messages import MESSAGES, language, message
from api.serializers import rfc3339

app = Flask(__name__)


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"), ("fr", "fr"), ("fr-CA", "fr"), ("fr-FR,fr;q=0.9,en;q=0.5", "fr"),
    ("en-GB,fr;q=0.5", "en"), ("de,fr;q=0.8", "fr"), ("de", "en"), ("*", "en"),
    ("en;q=0.1,fr;q=0.9", "fr"), ("fr;q=0", "en"),
])
def test_french_is_chosen_only_when_preferred(header, expected):
    headers = {"Accept-Language": header} if header else {}
    with app.test_request_context(headers=headers):
        assert language() == expected


def test_every_message_has_an_english_and_a_french_text():
    for english, french in MESSAGES.values():
        assert english and french and english != french


def test_a_token_expired_message_names_the_restored_points():
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        assert message("token_expired", {"points_restored": 7, "reason": "expired"}) == (
            "Ce jeton a expiré ; ses 7 points ont été rendus au solde.")
    with app.test_request_context():
        assert "7 points were restored" in message(
            "token_expired", {"points_restored": 7, "reason": "cancelled"})


def test_times_are_rfc3339_utc_with_z_whatever_the_zone():
    paris = timezone(timedelta(hours=1))
    moment = datetime(2030, 1, 1, 1, 0, 0, tzinfo=paris)
    assert rfc3339(moment) == "2030-01-01T00:00:00.000000Z"
    assert rfc3339(datetime(2030, 1, 1, tzinfo=UTC)) == "2030-01-01T00:00:00.000000Z"


def test_fingerprints_ignore_key_order_and_differ_by_content():
    assert fingerprint("issue", {"a": 1, "b": 2}) == fingerprint("issue", {"b": 2, "a": 1})
    assert fingerprint("issue", {"points": 1}) != fingerprint("issue", {"points": 2})
    assert fingerprint("credit", "u1", {"points": 1}) != fingerprint("credit", "u2",
                                                                    {"points": 1})
