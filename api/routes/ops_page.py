"""The ops console's web page at ``/ops/``: static files from the repository, no CDN, so
it works on a network without the internet. The page asks for a bearer token and uses only
``/api/ops/``."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).resolve().parent.parent / "static" / "ops"

# Only our own scripts, styles and API: nothing from elsewhere, no inline script.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def blueprint() -> Blueprint:
    bp = Blueprint("ops_page", __name__)

    @bp.get("/ops/")
    def page() -> Response:
        return _served("index.html")

    @bp.get("/ops/<name>")
    def asset(name: str) -> Response:
        return _served(name)

    return bp


def _served(name: str) -> Response:
    response = send_from_directory(STATIC, name, max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
