"""A redeem sent with an ``Idempotency-Key``: a till that retries after a network error
gets its own first answer again (``Idempotent-Replayed: true``), never "already
redeemed" for the redeem it made itself. The key is claimed in the redeem's own
transaction (api/idempotency.py), so the token and the stored answer commit together.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy.orm import Session

from api import idempotency, serializers
from api.idempotency import Outcome, Scope
from api.routes.common import deps, metrics, respond
from shared.services.redeem import log_redeemed, redeem_in
from shared.services.refund import log_refunds
from shared.services.views import TokenView


def redeemed_body(token: TokenView) -> dict[str, Any]:
    return {"token": serializers.token(token), "user_id": token.user_id}


def keyed_redeem(scope: Scope, code: str, merchant_id: str) -> Response:
    """Redeem ``code`` at most once per key; raises the refusal as the plain redeem does
    (a replayed refusal is answered, not raised: it is not counted twice)."""

    def effect(session: Session) -> Outcome:
        token, restored, refusal = redeem_in(session, deps(), code, merchant_id)
        hooks = [lambda: log_refunds(restored)]
        if refusal is not None:
            return Outcome(refusal=refusal, after_commit=hooks)
        assert token is not None
        hooks += [lambda: log_redeemed(token, merchant_id), metrics().redeemed.inc]
        return Outcome(status=200, body=redeemed_body(token), after_commit=hooks)

    return respond(idempotency.run(deps(), scope, effect))
