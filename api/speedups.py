"""Speed patches of Flask, in one place (the API's process); behaviour unchanged.

Two per-request costs taken out of the hot path, each relying on a Flask internal that
tests/unit/api/test_speedups.py pins (it fails when Flask changes it):

* :class:`JsonProvider` builds the response encoder once and calls Flask's
  ``_prepare_response_obj`` itself;
* :class:`App` remembers ``ensure_sync``'s answer for plain functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, with the response encoder built once.

    ``jsonify`` calls ``json.dumps`` with options, which builds a new encoder every time;
    the options never change here, so one encoder (stateless between calls) serves every
    response. Same bytes as Flask's compact output. Keys keep their order: the
    contract's field order, as the views build them.
    """

    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._compact = json.JSONEncoder(
            default=self.default, ensure_ascii=self.ensure_ascii, sort_keys=self.sort_keys,
            separators=(",", ":"),
        ).encode

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self._app.debug or self.compact is False:  # indented: Flask's own path
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(f"{self._compact(obj)}\n", mimetype=self.mimetype)


class App(Flask):
    """Flask whose ``ensure_sync`` remembers its answer for plain functions.

    Flask asks ``inspect`` whether each hook and the view is a coroutine function, on
    every call: four to eight times a request, 4 % of an issue's CPU in-process. A
    function's kind never changes, so a plain one is looked up once; coroutine functions
    still take Flask's path every time.
    """

    json_provider_class = JsonProvider

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        plain = self._sync.get(func)
        if plain is None:
            plain = not iscoroutinefunction(func)
            if len(self._sync) < 1024:  # bound methods are new objects, yet equal: bounded
                self._sync[func] = plain
        return func if plain else super().ensure_sync(func)
