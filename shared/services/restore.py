"""The one way points come back: delete the token, append the refund, credit the owner.

Expire, cancel and sweep all call :func:`restore_tokens`. Its DELETE is the state
transition and the idempotency guard: only the transaction whose DELETE returned the row
refunds it; a concurrent redeem (``status = 'active'`` and ``expires_at > now``) and this
(``expires_at <= now``, or a cancel by the owner) cannot both win the row. The unique
``(token_id, kind)`` on the ledger is the second belt: a double refund aborts the
transaction instead of paying twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, insert, select, text
from sqlalchemy.orm import Session

from schemas.events import Event, TokenCancelled, TokenExpired
from shared.clock import Clock
from shared.persistence.outbox import record_events
from shared.persistence.tables import Account, LedgerEntry, Token
from shared.services.views import Restored

log = logging.getLogger("exchange_tokens.restore")

EXPIRED = "expired"
CANCELLED = "cancelled"


def expired_condition(clock: Clock) -> ColumnElement[bool]:
    return and_(Token.status == "active", Token.expires_at <= clock.now())


def restore_tokens(
    session: Session,
    clock: Clock,
    condition: ColumnElement[bool],
    reason: str,
    *,
    limit: int | None = None,
    skip_locked: bool = False,
) -> list[Restored]:
    """Restore every token matching ``condition`` (at most ``limit``), in this transaction.

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
    # every matching row goes: a sweep of 500 could restore 100,000 in one transaction.
    ids = session.execute(chosen).scalars().all()
    if not ids:
        return []
    gone = session.execute(
        delete(Token)
        .where(Token.id.in_(ids))
        .where(condition)  # re-checked on the locked row
        .returning(Token.id, Token.user_id, Token.points, Token.code, Token.expires_at,
                   clock.now().label("now"))
    ).all()
    if not gone:
        return []
    now: datetime = gone[0].now
    session.execute(
        insert(LedgerEntry),
        [
            {
                "user_id": row.user_id,
                "amount": row.points,
                "kind": "refund",
                "reason": reason,
                "token_id": row.id,
                "token_code": row.code,
                "created_at": now,
            }
            for row in gone
        ],
    )
    totals: dict[str, int] = {}
    for row in gone:
        totals[row.user_id] = totals.get(row.user_id, 0) + row.points
    balances = _credit_accounts(session, totals, now)
    event_type = TokenExpired if reason == EXPIRED else TokenCancelled
    events: list[Event] = []
    restored = []
    for row in gone:
        fields = {"token_id": row.id, "user_id": row.user_id, "points": row.points}
        if event_type is TokenExpired:
            events.append(TokenExpired(**fields, expires_at=row.expires_at, restored=True))
        else:
            events.append(TokenCancelled(**fields))
        restored.append(
            Restored(
                token_id=row.id,
                user_id=row.user_id,
                points=row.points,
                reason=reason,
                expires_at=row.expires_at,
                restored_at=now,
                balance=balances[row.user_id],
            )
        )
    record_events(session, events)
    return restored


def _credit_accounts(session: Session, totals: dict[str, int], now: datetime) -> dict[str, int]:
    """Add each user's refund to their balance: two statements whatever the number of
    users (a batch of refunds spans hundreds of accounts; one UPDATE each was the
    bottleneck). The SELECT locks the accounts in user-id order, the one fixed order that
    every transaction uses, against deadlocks; the UPDATE then finds them locked by us."""
    users = sorted(totals)
    if len(users) > 1:  # one account needs no ordering: the UPDATE locks it
        session.execute(
            select(Account.user_id).where(Account.user_id.in_(users))
            .order_by(Account.user_id).with_for_update()
        ).all()
    # Arrays as parameters keep the statement text fixed (a VALUES list of literal rows
    # would be compiled again for every batch).
    rows = session.execute(
        text(
            "UPDATE accounts AS a SET balance = a.balance + v.amount, updated_at = :now"
            " FROM unnest(CAST(:users AS text[]), CAST(:amounts AS bigint[]))"
            " AS v(user_id, amount) WHERE a.user_id = v.user_id"
            " RETURNING a.user_id, a.balance"
        ),
        {"now": now, "users": users, "amounts": [totals[u] for u in users]},
    ).all()
    balances = {row.user_id: row.balance for row in rows}
    if len(balances) != len(users):  # a refund always has its account (debited at issue)
        raise RuntimeError(f"accounts missing for {sorted(set(users) - set(balances))}")
    return balances


def log_restored(restored: list[Restored]) -> None:
    """Called after commit: only what really happened is logged."""
    for r in restored:
        fields = {"token_id": str(r.token_id), "user_id": r.user_id, "points": r.points}
        log.info("points restored", extra={**fields, "reason": r.reason})
        log.info(
            "expired token deleted" if r.reason == EXPIRED else "cancelled token deleted",
            extra=fields,
        )
