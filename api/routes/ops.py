"""For ops and tools: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from spectree import SpecTree

from api.docs import documented
from api.errors import error_response
from api.routes.common import metrics
from schemas.api import Health, Readiness


def blueprint(spec: SpecTree) -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    @documented(spec, (200, Health), tags=("ops",), auth=False)
    def healthz() -> Response:
        """The process answers (no dependency is checked)."""
        return jsonify({"status": "ok"})

    @bp.get("/readyz")
    @documented(spec, (200, Readiness), tags=("ops",), auth=False)
    def readyz() -> Response:
        """200 when the database and the broker each answer within 2 s, else 503 naming
        the one that failed."""
        checks = current_app.extensions["readiness"].check()
        ready = all(v == "ok" for v in checks.values())
        response = jsonify({"status": "ok" if ready else "unavailable", "checks": checks})
        if not ready:
            response = error_response(503, "service_unavailable", {"checks": checks})
        return response

    @bp.get("/metrics")
    @documented(spec, (200, None), tags=("ops",), auth=False)
    def prometheus() -> Response:
        """Prometheus text format."""
        m = metrics()
        return Response(m.render(), mimetype=None, content_type=m.content_type)

    @bp.get("/api/openapi.json")
    @documented(spec, (200, None), tags=("ops",), auth=False)
    def openapi() -> Response:
        """This document."""
        return jsonify(spec.spec)

    return bp
