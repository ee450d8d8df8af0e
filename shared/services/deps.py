"""What every service needs, built once by the composition root (shared/bootstrap.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import Clock, DatabaseClock


@dataclass(frozen=True)
class Deps:
    session_factory: sessionmaker[Session]
    clock: Clock = field(default_factory=DatabaseClock)
    token_ttl_seconds: int = 180
    max_active_tokens: int = 10
    redeem_failures_per_minute: int = 30

    @property
    def engine(self) -> Engine:
        """What the sessions bind to: for a service that needs no ORM session (issue)."""
        bind = self.session_factory.kw["bind"]
        assert isinstance(bind, Engine)
        return bind
