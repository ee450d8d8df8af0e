"""The reference wallet and till (``api/static/app/``), served under ``/app/`` when
``WEB_APP_ENABLED``. Plain files and ES modules, no framework and no CDN: what a
front-end developer copies to start. ``config.json`` tells the pages where the API is
(``WEB_APP_API_URL``; empty: this origin), so the same files work from another origin,
which ``CORS_ORIGINS`` on the API must then allow.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, redirect, request, send_from_directory
from werkzeug.wrappers import Response as WerkzeugResponse

from shared.settings import Settings

STATIC = Path(__file__).resolve().parent.parent / "static" / "app"


def content_security_policy(api_url: str) -> str:
    """Only this origin's own scripts and styles; calls to this origin and the API; QR
    images made into blob: URLs. The pages hold a bearer token: nothing else may run."""
    connect = f"'self' {api_url}".strip()
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src 'self' blob:; connect-src {connect}; base-uri 'none'; "
            f"form-action 'self'; frame-ancestors 'none'")


def blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("web_app", __name__)
    policy = content_security_policy(settings.web_app_api_url)

    @bp.after_request
    def _protect(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @bp.get("/app/")
    def index() -> Response | WerkzeugResponse:
        if not request.path.endswith("/"):  # the pages' relative links need the slash
            return redirect("/app/", code=308)
        return send_from_directory(STATIC, "index.html")

    @bp.get("/app/config.json")
    def config() -> Response:
        response = jsonify({"api_url": settings.web_app_api_url})
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/app/<path:name>")
    def asset(name: str) -> Response:
        return send_from_directory(STATIC, name)  # safe_join: nothing outside STATIC

    return bp
