"""Accounts: an admin credits points; a user reads their balance."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from spectree import SpecTree
from sqlalchemy.orm import Session

from api import idempotency
from api.auth import authenticate
from api.body import invalid, parse
from api.docs import documented
from api.routes.common import deps, idempotency_scope, respond
from schemas.api import Balance, CreditRequest, IdempotencyHeaders
from shared.services import balance
from shared.services.credit import credit_in

log = logging.getLogger("exchange_tokens.credit")

MAX_USER_ID = 200


def blueprint(spec: SpecTree) -> Blueprint:
    bp = Blueprint("accounts", __name__)

    @bp.post("/api/accounts/<user_id>/credits")
    @documented(spec, (201, Balance), 400, 409, 422, tags=("accounts",),
                json=CreditRequest, headers=IdempotencyHeaders)
    def credit(user_id: str) -> Response:
        """Credit points to a user's account (admin). Takes an optional Idempotency-Key."""
        principal = authenticate("admin")
        body = parse(CreditRequest)
        if not 1 <= len(user_id) <= MAX_USER_ID or "\x00" in user_id:
            raise invalid("user_id", f"must be 1 to {MAX_USER_ID} characters")
        scope = idempotency_scope(principal.sub, "credit", user_id, body.model_dump())

        def effect(session: Session) -> idempotency.Outcome:
            new_balance = credit_in(session, deps(), user_id, body.points, body.reason)
            return idempotency.Outcome(
                status=201, body={"user_id": user_id, "balance": new_balance},
                after_commit=[lambda: log.info("points credited", extra={
                    "user_id": user_id, "points": body.points, "reason": body.reason})],
            )

        return respond(idempotency.run(deps(), scope, effect))

    @bp.get("/api/accounts/me")
    @documented(spec, (200, Balance), tags=("accounts",))
    def me() -> Response:
        """The caller's balance (0 for a new user)."""
        principal = authenticate("user")
        return jsonify({"user_id": principal.sub, "balance": balance(deps(), principal.sub)})

    return bp
