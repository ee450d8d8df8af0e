"""A merchant's preview of a code: what redeem would answer, and nothing changes.

A preview is a lookup by code like a redeem, so it is held to the same failed-attempt
limit (shared/services/abuse.py): an unknown code counts, a 409 or 410 does not, and a merchant at
the limit gets 429 before any token is looked at. Otherwise previews would be a free
oracle for guessing codes.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from spectree import SpecTree

from api.auth import authenticate
from api.body import parse
from api.docs import documented
from api.routes.common import deps
from api.routes.keyed_redeem import redeemed_body
from schemas.api import Redeemed, RedeemRequest
from shared.errors import TokenNotFound
from shared.services import abuse
from shared.services.preview import preview


def blueprint(spec: SpecTree) -> Blueprint:
    bp = Blueprint("redeem_preview", __name__)

    @bp.post("/api/exchange-tokens/redeem/preview/")
    @documented(spec, (200, Redeemed), 400, 404, 409, 410, 422, 429, tags=("tokens",),
                json=RedeemRequest)
    def preview_code() -> Response:
        """What redeeming this code would answer now (the token and its owner, or the same
        error); changes nothing. Unknown codes count toward the redeem failure limit."""
        principal = authenticate("merchant")
        body = parse(RedeemRequest)
        abuse.check_redeem_allowed(deps(), principal.sub)
        try:
            token = preview(deps(), body.code)
        except TokenNotFound:
            abuse.record_redeem_failure(deps(), principal.sub)  # 429 instead, past the limit
            raise
        return jsonify(redeemed_body(token))

    return bp
