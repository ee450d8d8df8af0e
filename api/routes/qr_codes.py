"""A token's code as a QR code, for the owner's app to show (``qr.svg``, ``qr.png``).

The code is a short-lived bearer secret: the image is never cached (``no-store``), and
answers exactly as the token itself does (another user's token is a 404, an expired or
cancelled one a 410).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from spectree import SpecTree

from api import qr
from api.auth import authenticate
from api.docs import documented
from api.routes.common import deps
from api.routes.tokens import token_id_of
from shared.services import get_token


def blueprint(spec: SpecTree) -> Blueprint:
    bp = Blueprint("qr_codes", __name__)

    @bp.get("/api/exchange-tokens/<token_id>/qr.<any(svg, png):kind>")
    @documented(spec, (200, None), 404, 410, tags=("tokens",))
    def qr_code(token_id: str, kind: str) -> Response:
        """The token's code, and only the code, as a QR code (SVG or PNG); never cached."""
        principal = authenticate("user")
        token = get_token(deps(), principal.sub, token_id_of(token_id))
        response = current_app.response_class(qr.draw(token.code, kind),
                                               mimetype=qr.FORMATS[kind])
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp
