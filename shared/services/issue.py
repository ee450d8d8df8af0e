"""Issue a token: sweep the user's expired tokens, debit, create the token, record TokenIssued."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql.psycopg2 import dialect as psycopg2_dialect
from sqlalchemy.orm import Session

from schemas.events import SCHEMA_VERSION
from shared.codes import new_code
from shared.errors import InsufficientPoints, TooManyActiveTokens
from shared.expiry_rules import due
from shared.persistence.outbox import event_headers
from shared.persistence.tables import Token
from shared.persistence.transactions import retry_transaction, single_statement, unit_of_work
from shared.services.deps import Deps
from shared.services.refund import EXPIRED, log_refunds, refund_tokens
from shared.services.views import Issued, Refund, TokenView

log = logging.getLogger("exchange_tokens.issue")

# The whole decision and every write of an issue, in one round trip: see migration 0003
# for why it is a server-side function. Its outcomes:
ISSUED, SWEEP, INSUFFICIENT, TOO_MANY, NO_ACCOUNT = (
    "issued", "sweep", "insufficient", "too_many", "no_account")
_ISSUE = text(
    "SELECT outcome, balance, now, expires_at FROM issue_token("
    ":user_id, :points, :reward, CAST(:token_id AS uuid), :code, CAST(:event_id AS uuid),"
    " :ttl_seconds, :max_active, CAST(:headers AS jsonb), :schema_version,"
    " CAST(:now AS timestamptz), :swept)"
)


# The same call in the driver's own paramstyle, for single_statement (and the benchmark's
# plain-SQL baseline, bench/plain_sql.py).
ISSUE_CALL_SQL = str(_ISSUE.compile(dialect=psycopg2_dialect()))


def _params(deps: Deps, user_id: str, points: int, reward: str | None) -> dict[str, Any]:
    return {
        "user_id": user_id, "points": points, "reward": reward,
        "token_id": str(uuid.uuid4()), "code": new_code(), "event_id": str(uuid.uuid4()),
        "ttl_seconds": deps.token_ttl_seconds, "max_active": deps.max_active_tokens,
        "headers": json.dumps(event_headers()), "schema_version": SCHEMA_VERSION,
        "now": deps.clock.fixed(), "swept": False,
    }


def _result(row: Any, params: dict[str, Any], deps: Deps
            ) -> tuple[Issued | None, Exception | None]:
    """What one call of issue_token decided: the issued token, or the refusal to raise."""
    outcome, balance, now, expires_at = row
    points = params["points"]
    if outcome == ISSUED:
        token = TokenView(
            id=uuid.UUID(params["token_id"]), code=params["code"], user_id=params["user_id"],
            points=points, reward=params["reward"], status="active", created_at=now,
            expires_at=expires_at, redeemed_at=None, merchant_id=None, as_of=now,
        )
        return Issued(token=token, balance=balance), None
    if outcome == TOO_MANY:
        return None, TooManyActiveTokens(limit=deps.max_active_tokens)
    if outcome in (INSUFFICIENT, NO_ACCOUNT):  # never credited: nothing to spend
        return None, InsufficientPoints(balance=balance, points=points)
    raise AssertionError(f"issue_token answered {outcome!r}")


def issue_in(
    session: Session, deps: Deps, user_id: str, points: int, reward: str | None
) -> tuple[Issued | None, list[Refund], Exception | None]:
    """The issue, in the caller's transaction. Returns (result, restored, refusal): on a
    refusal the caller still commits, so the sweep that ran first is kept."""
    params = _params(deps, user_id, points, reward)
    row = session.execute(_ISSUE, params).one()
    restored: list[Refund] = []
    if row.outcome == SWEEP:
        # The original system's "cleanup on create", with the account still locked by the
        # call above. SKIP LOCKED: a token another transaction holds (a worker expiring it
        # right now) is left to it, so we never wait on a token while holding the
        # account: no lock-order deadlock. Then the same call again, told not to stop for
        # what is left (a token SKIP LOCKED passed over).
        restored = refund_tokens(
            session, deps.clock, due(deps.clock.now()) & (Token.user_id == user_id),
            EXPIRED, skip_locked=True,
        )
        row = session.execute(_ISSUE, {**params, "swept": True}).one()
    result, refusal = _result(row, params, deps)
    return result, restored, refusal


def log_issued(issued: Issued) -> None:
    t = issued.token
    log.info(
        "token created",
        extra={"token_id": str(t.id), "user_id": t.user_id, "points": t.points,
               "expires_at": t.expires_at.isoformat()},
    )


@retry_transaction()
def _issue_swept(deps: Deps, user_id: str, points: int, reward: str | None) -> Issued:
    with unit_of_work(deps.session_factory) as session:
        result, restored, refusal = issue_in(session, deps, user_id, points, reward)
        session.commit()
    log_refunds(restored)
    if refusal is not None:
        raise refusal
    assert result is not None
    log_issued(result)
    return result


@retry_transaction()
def issue(deps: Deps, user_id: str, points: int, reward: str | None = None) -> Issued:
    """Turn ``points`` of ``user_id``'s balance into a new active token.

    Raises :class:`InsufficientPoints` or :class:`TooManyActiveTokens`; the user's expired
    tokens are restored first either way.

    The common case is one call of issue_token on a plain connection: no ORM session, the
    API's hot path. Only a user with expired tokens to restore takes the session path.
    """
    params = _params(deps, user_id, points, reward)
    with single_statement(deps.engine) as cursor:
        cursor.execute(ISSUE_CALL_SQL, params)
        row = cursor.fetchone()
    if row[0] == SWEEP:  # nothing written: the restore and the issue go together
        return _issue_swept(deps, user_id, points, reward)
    result, refusal = _result(row, params, deps)
    if refusal is not None:
        raise refusal
    assert result is not None
    log_issued(result)
    return result
