"""ETags on a token, so an app polling the token behind a QR code pays for a 304 with no
body until the token changes (redeemed, or gone: then 200 or 410, never 304).

Weak tags (``W/``): the body's ``expires_in`` counts down every second while the token
stays the same; the tag covers what really changes the token (its status, when and by
whom it was redeemed, its expiry), so "nothing changed" means the token did not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Response, current_app, request

from shared.services.views import TokenView


def etag_of(token: TokenView) -> str:
    state = "|".join(str(part) for part in (
        token.id, token.status, token.expires_at.isoformat(),
        token.redeemed_at.isoformat() if token.redeemed_at else "",
        token.merchant_id or ""))
    return hashlib.sha256(state.encode()).hexdigest()[:27]


def conditional(token: TokenView, build: Callable[[], Response]) -> Response:
    """304 when the request's ``If-None-Match`` holds the token's tag (weak comparison,
    as RFC 9110 asks for If-None-Match); else ``build()``. Both carry the tag."""
    tag = etag_of(token)
    if request.if_none_match.contains_weak(tag):
        response = current_app.response_class(status=304)
    else:
        response = build()
    response.set_etag(tag, weak=True)
    return response
