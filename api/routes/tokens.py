"""Exchange tokens: issue, status, read, cancel (the owner) and redeem (a merchant)."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, current_app, jsonify, request
from spectree import SpecTree
from sqlalchemy.orm import Session
from werkzeug.exceptions import MethodNotAllowed

from api import etags, idempotency, serializers
from api.auth import authenticate
from api.body import parse
from api.docs import documented
from api.routes.common import deps, idempotency_scope, metrics, respond
from api.routes.keyed_redeem import keyed_redeem
from schemas.api import (
    CancelResponse,
    IdempotencyHeaders,
    IfNoneMatchHeaders,
    Issued,
    IssueRequest,
    Redeemed,
    RedeemRequest,
    StatusResponse,
    Token,
)
from shared.errors import TokenNotFound
from shared.services import abuse, cancel, get_token, redeem, status
from shared.services.issue import issue as issue_token
from shared.services.issue import issue_in, log_issued
from shared.services.refund import log_refunds

# Paths of their own routes: with another method they must answer 405, not fall through to
# the token routes as an id that names no token; and their Allow header names their own
# methods only.
_OTHER_ROUTES = {"redeem": ["OPTIONS", "POST"], "status": ["GET", "HEAD", "OPTIONS"]}
_PREFIX = "/api/exchange-tokens/"


def _not_another_route(raw: str) -> None:
    if raw in _OTHER_ROUTES:
        raise MethodNotAllowed(valid_methods=_OTHER_ROUTES[raw])


def _own_route_methods() -> Response | None:
    """Before any view: PUT or PATCH on ``/redeem/`` or ``/status/`` (no route takes
    them) gets werkzeug's 405, whose Allow lists the methods of every route the path fits,
    the token route's GET and DELETE included; OPTIONS answers the same list. Both name
    the path's own methods instead."""
    refused = isinstance(request.routing_exception, MethodNotAllowed)
    if not refused and request.method != "OPTIONS":  # every served request: nothing more
        return None
    path = request.path
    methods = _OTHER_ROUTES.get(path[len(_PREFIX):].rstrip("/")) \
        if path.startswith(_PREFIX) else None
    if methods is None:
        return None
    if refused:
        raise MethodNotAllowed(valid_methods=methods)
    return current_app.response_class(status=200, headers={"Allow": ", ".join(methods)})


def token_id_of(raw: str) -> uuid.UUID:
    """A path id that is no UUID names no token: 404, like any unknown id."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise TokenNotFound("no such token") from None


def blueprint(spec: SpecTree) -> Blueprint:  # noqa: C901 - one nested view per route
    bp = Blueprint("tokens", __name__)
    bp.before_app_request(_own_route_methods)

    @bp.post("/api/exchange-tokens/")
    @documented(spec, (201, Issued), 400, 409, 422, tags=("tokens",), json=IssueRequest,
                headers=IdempotencyHeaders)
    def issue() -> Response:
        """Turn points into a new single-use token. Takes an optional Idempotency-Key."""
        principal = authenticate("user")
        body = parse(IssueRequest)
        scope = idempotency_scope(principal.sub, "issue", body.model_dump())
        if scope is None:  # the hot path: one call, no session (shared/services/issue.py)
            issued = issue_token(deps(), principal.sub, body.points, body.reward)
            metrics().issued.inc()
            response = jsonify(serializers.issued(issued))
            response.status_code = 201
            return response

        def effect(session: Session) -> idempotency.Outcome:
            result, restored, refusal = issue_in(session, deps(), principal.sub, body.points,
                                                 body.reward)
            hooks = [lambda: log_refunds(restored)]
            if refusal is not None:
                return idempotency.Outcome(refusal=refusal, after_commit=hooks)
            assert result is not None
            hooks += [lambda: log_issued(result), metrics().issued.inc]
            return idempotency.Outcome(status=201, body=serializers.issued(result),
                                       after_commit=hooks)

        return respond(idempotency.run(deps(), scope, effect))

    @bp.get("/api/exchange-tokens/status/")
    @documented(spec, (200, StatusResponse), tags=("tokens",))
    def token_status() -> Response:
        """Balance, active tokens, latest redeemed and restored; expired ones restored first."""
        principal = authenticate("user")
        return jsonify(serializers.status(status(deps(), principal.sub)))

    @bp.get("/api/exchange-tokens/<token_id>")
    @documented(spec, (200, Token), 404, 405, 410, tags=("tokens",),
                headers=IfNoneMatchHeaders)
    def read(token_id: str) -> Response:
        """One of the caller's tokens."""
        _not_another_route(token_id)
        principal = authenticate("user")
        token = get_token(deps(), principal.sub, token_id_of(token_id))
        return etags.conditional(token, lambda: jsonify(serializers.token(token)))

    @bp.delete("/api/exchange-tokens/<token_id>")
    @documented(spec, (200, CancelResponse), 404, 405, 409, 410, tags=("tokens",))
    def cancel_token(token_id: str) -> Response:
        """Cancel one of the caller's active tokens: its points come back at once."""
        _not_another_route(token_id)
        principal = authenticate("user")
        result = cancel(deps(), principal.sub, token_id_of(token_id))
        metrics().cancelled.inc()
        return jsonify(serializers.cancelled(result))

    @bp.post("/api/exchange-tokens/redeem/")
    @documented(spec, (200, Redeemed), 400, 404, 409, 410, 422, 429, tags=("tokens",),
                json=RedeemRequest, headers=IdempotencyHeaders)
    def redeem_code() -> Response:
        """Redeem a code at the calling merchant. Unknown codes count toward a per-minute
        limit of failures (429). Takes an optional Idempotency-Key."""
        principal = authenticate("merchant")
        body = parse(RedeemRequest)
        scope = idempotency_scope(principal.sub, "redeem", body.model_dump())
        abuse.check_redeem_allowed(deps(), principal.sub)
        try:
            if scope is not None:
                return keyed_redeem(scope, body.code, principal.sub)
            token = redeem(deps(), body.code, principal.sub)
        except TokenNotFound:
            abuse.record_redeem_failure(deps(), principal.sub)  # 429 instead, past the limit
            raise
        metrics().redeemed.inc()
        return jsonify({"token": serializers.token(token), "user_id": token.user_id})

    return bp
