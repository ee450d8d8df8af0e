"""The one way points come back: delete the token, append the refund, credit the owner.

Expire, cancel and sweep all call :func:`refund_tokens`. Its ``SELECT ... FOR UPDATE``
is the idempotency guard: it takes each token's row lock and re-checks the condition on
the newest row version after any wait, so only one transaction ever holds a token that
still matches; a concurrent redeem (``status = 'active'`` and ``expires_at > now``) and
this (``expires_at <= now``, or a cancel by the owner) cannot both win the row. The
locked tokens are then deleted and refunded by one call (the SQL function
``refund_tokens``, migration 0004). The unique ``(token_id, kind)`` on the ledger is the
second belt: a double refund aborts the transaction instead of paying twice.

"Refund" is the project's one word for points coming back. The API's fields
(``restored``, ``points_restored``, ``restored_at``), the metrics and the log lines keep
the word "restored" because the published contract names them so.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.orm import Session

from schemas.events import SCHEMA_VERSION
from shared.clock import Clock
from shared.persistence.outbox import event_headers
from shared.persistence.tables import Token
from shared.services.views import Refund

log = logging.getLogger("exchange_tokens.refund")

EXPIRED = "expired"
CANCELLED = "cancelled"


def refund_tokens(
    session: Session,
    clock: Clock,
    condition: ColumnElement[bool],
    reason: str,
    *,
    limit: int | None = None,
    skip_locked: bool = False,
) -> list[Refund]:
    """Refund every token matching ``condition`` (at most ``limit``), in this transaction.

    ``skip_locked``: leave rows another transaction holds (a redeem in flight, another
    sweeper) to that transaction, so several sweepers run side by side without waiting.
    """
    # expires_at, then id: a total order, so two batches that overlap lock in the same order.
    chosen = select(Token.id).where(condition).order_by(Token.expires_at, Token.id)
    if limit is not None:
        chosen = chosen.limit(limit)
    # Lock tokens first, then accounts (one fixed order against deadlocks).
    chosen = chosen.with_for_update(skip_locked=skip_locked)
    # Two statements, not DELETE … WHERE id IN (SELECT … LIMIT n FOR UPDATE): PostgreSQL
    # may rescan that subquery once per outer row (a nested-loop semi-join), and each
    # rescan skips the rows this DELETE already removed, so the LIMIT window slides and
    # every matching row goes: a sweep of 500 could refund 100,000 in one transaction.
    ids = session.execute(chosen).scalars().all()
    if not ids:
        return []
    # Every write of the batch in one call (migration 0004): delete, refund rows, one
    # credit per account (locked in user-id order), one event per token.
    rows = session.execute(_REFUND, {
        "ids": [str(i) for i in ids], "reason": reason, "now": clock.fixed(),
        "headers": json.dumps(event_headers()), "schema_version": SCHEMA_VERSION,
    }).all()
    restored = []
    for row in rows:
        if row.balance is None:  # a refund always has its account (debited at issue)
            raise RuntimeError(f"account {row.user_id!r} missing for token {row.token_id}")
        restored.append(Refund(
            token_id=row.token_id, user_id=row.user_id, points=row.points, reason=reason,
            expires_at=row.expires_at, restored_at=row.now, balance=row.balance,
        ))
    return restored


_REFUND = text(
    "SELECT token_id, user_id, points, expires_at, balance, now FROM refund_tokens("
    "CAST(:ids AS uuid[]), :reason, CAST(:now AS timestamptz), CAST(:headers AS jsonb),"
    " :schema_version)"
)


def log_refunds(restored: list[Refund]) -> None:
    """Called after commit: only what really happened is logged."""
    for r in restored:
        fields = {"token_id": str(r.token_id), "user_id": r.user_id, "points": r.points}
        log.info("points restored", extra={**fields, "reason": r.reason})
        log.info(
            "expired token deleted" if r.reason == EXPIRED else "cancelled token deleted",
            extra=fields,
        )
