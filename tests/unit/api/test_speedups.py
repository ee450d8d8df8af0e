"""api/speedups.py: the same answers as Flask's own, computed once; and the Flask code it
relies on, pinned (a change fails here: re-check the speedups, then record the print)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from flask import Flask

from api.speedups import App

PAYLOAD = {"z": 1, "a": [1.5, None, True], "when": datetime(2026, 11, 24, 7, 0, tzinfo=UTC),
           "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("2.50"),
           "name": "Zoë ✓"}


def _flask_reference() -> Flask:
    flask = Flask("reference")
    flask.json.sort_keys = False  # type: ignore[attr-defined]
    return flask


def test_json_responses_are_byte_for_byte_flasks():
    ours, reference = App("ours"), _flask_reference()
    with ours.app_context():
        mine = ours.json.response(PAYLOAD).get_data()
    with reference.app_context():
        theirs = reference.json.response(PAYLOAD).get_data()
    assert mine == theirs
    assert mine.startswith(b'{"z":1,"a":[1.5,null,true],')  # compact, keys in order


def test_debug_mode_keeps_flasks_indented_output():
    ours, reference = App("ours"), _flask_reference()
    ours.debug = reference.debug = True
    with ours.app_context():
        mine = ours.json.response(PAYLOAD).get_data()
    with reference.app_context():
        theirs = reference.json.response(PAYLOAD).get_data()
    assert mine == theirs and b'\n  "z": 1' in mine


def test_plain_functions_are_run_as_they_are_and_coroutines_still_go_through_flask():
    app = App("ours")

    def view() -> str:
        return "ok"

    async def coroutine_view() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view  # remembered
    for _ in range(2):  # and a coroutine function is never taken for a plain one
        try:
            wrapped = app.ensure_sync(coroutine_view)
        except RuntimeError as exc:  # Flask without its "async" extra says so
            assert "async" in str(exc)
        else:
            assert wrapped is not coroutine_view


def test_the_flask_code_the_speedups_rely_on_is_unchanged() -> None:
    import flask.json.provider

    from tests.support.fingerprints import changed

    relied_on = {
        "Flask.ensure_sync": (Flask.ensure_sync, "93da8bd89e2a20b7"),
        "DefaultJSONProvider.response": (flask.json.provider.DefaultJSONProvider.response,
                                         "9254e25fd3cf4013"),
        "JSONProvider._prepare_response_obj": (
            flask.json.provider.JSONProvider._prepare_response_obj, "2d8e7e3c29779474"),
    }
    assert not changed(relied_on), (
        f"Flask changed under api/speedups.py: re-check it: {changed(relied_on)}")
