"""``dlq replay --dry-run``: what each dead letter would do if replayed now, judged against
the current database. Read-only: one transaction that is rolled back, never a write.

The verdicts mirror the consumers' idempotent paths (the same guards the services use):
a TokenExpired command restores only an active token past its ``expires_at``; a
TokenRedeemed creates an exchange request only if none exists for the token and the
database shows the token redeemed by that merchant (else it is refused again); a TokenIssued
schedules an expiry only for a token still active.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from schemas.events import Event, TokenExpired, TokenIssued, TokenRedeemed, parse_event
from shared.clock import Clock
from shared.expiry_rules import ACTIVE, seconds_until_due
from shared.messaging.dead_letters import DeadLetter
from shared.persistence.tables import ExchangeRequest, LedgerEntry, Token
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps
from shared.services.redemption_check import refusal


def _poison_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


@dataclass(frozen=True)
class _Judge:
    """Reads the database in one (rolled back) transaction, on the services' clock."""

    session: Session
    clock: Clock

    def _token(self, token_id: uuid.UUID) -> Row[str, int, datetime, datetime] | None:
        return self.session.execute(
            select(Token.status, Token.points, Token.expires_at, self.clock.now().label("now"))
            .where(Token.id == token_id)
        ).first()

    def _refund(self, token_id: uuid.UUID) -> tuple[int, str | None] | None:
        row = self.session.execute(
            select(LedgerEntry.amount, LedgerEntry.reason).where(
                LedgerEntry.token_id == token_id, LedgerEntry.kind == "refund"
            )
        ).first()
        return (row.amount, row.reason) if row else None

    def expire_command(self, event: TokenExpired) -> str:
        token = self._token(event.token_id)
        if token is None:
            refund = self._refund(event.token_id)
            if refund is not None:
                return f"token already restored ({refund[1] or 'expired'}, {refund[0]} points): no-op"
            return "unknown token (never issued here): no-op"
        if token.status != ACTIVE:
            return f"token already {token.status}: no-op"
        remaining = seconds_until_due(token.expires_at, token.now)
        if remaining > 0:
            return f"token active, due in {math.ceil(remaining)} s: would be re-delayed"
        return f"token expired: would restore {token.points} points"

    def issued(self, event: TokenIssued) -> str:
        token = self._token(event.token_id)
        if token is not None and token.status == "active":
            return "token still active: would schedule expiry"
        return "token no longer active: no-op"

    def redeemed(self, event: TokenRedeemed) -> str:
        exists = self.session.execute(
            select(ExchangeRequest.id).where(ExchangeRequest.token_id == event.token_id)
        ).first()
        if exists is not None:
            return "exchange request already exists: no-op"
        why = refusal(self.session, event)
        if why is not None:
            return f"{why}: would be refused again"
        return "would create exchange request"

    def __call__(self, event: Event) -> str:
        if isinstance(event, TokenExpired) and not event.restored:
            return self.expire_command(event)
        if isinstance(event, TokenIssued):
            return self.issued(event)
        if isinstance(event, TokenRedeemed):
            return self.redeemed(event)
        # A fact recorded after the state changed (TokenCancelled, TokenExpired with
        # restored set): consumers only log it, so a replay changes no state.
        return f"{event.type} is a recorded fact: would be logged again, no state change"


def verdicts(
    deps: Deps, letters: list[DeadLetter], routable: Callable[[DeadLetter], str | None]
) -> dict[int, str]:
    """For each dead letter (by position), what a replay would do now.

    ``routable(letter)`` returns why it cannot be republished (no original exchange, or
    the exchange is gone), or None.
    """
    out: dict[int, str] = {}
    with unit_of_work(deps.session_factory) as session:  # rolled back on exit: read-only
        judge = _Judge(session, deps.clock)
        for i, letter in enumerate(letters):
            problem = routable(letter)
            if problem is not None:
                out[i] = f"cannot replay: {problem}: would stay parked"
                continue
            try:
                event = parse_event(letter.body)
            except ValidationError as exc:
                out[i] = f"poison: would fail again ({_poison_reason(exc)})"
                continue
            out[i] = judge(event)
    return out
