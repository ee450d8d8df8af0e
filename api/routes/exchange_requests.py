"""Exchange requests: what the caller's redeemed tokens became."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from spectree import SpecTree

from api import serializers
from api.auth import authenticate
from api.docs import documented
from api.routes.common import deps
from schemas.api import ExchangeRequestList
from shared.services import list_exchange_requests


def blueprint(spec: SpecTree) -> Blueprint:
    bp = Blueprint("exchange_requests", __name__)

    @bp.get("/api/exchange-requests/")
    @documented(spec, (200, ExchangeRequestList), tags=("exchange-requests",))
    def list_requests() -> Response:
        """The caller's 100 latest exchange requests, newest first."""
        principal = authenticate("user")
        rows = list_exchange_requests(deps(), principal.sub)
        return jsonify([serializers.exchange_request(r) for r in rows])

    return bp
