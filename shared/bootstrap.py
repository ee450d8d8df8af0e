"""The composition root: every entrypoint (API, worker, CLI) builds its parts here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from shared.clock import Clock, DatabaseClock
from shared.persistence.database import make_engine, make_session_factory
from shared.services.deps import Deps
from shared.settings import Settings


@dataclass
class Container:
    settings: Settings
    engine: Engine
    deps: Deps

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings, *, clock: Clock | None = None, pool_size: int = 5,
    bound_server_waits: bool = False,
) -> Container:
    """``bound_server_waits``: give up on a server that does not answer a round trip
    within its statement timeout (plus a margin), for the API and the worker (make_engine)."""
    engine = make_engine(settings.sqlalchemy_url, pool_size=pool_size,
                         bound_server_waits=bound_server_waits)
    deps = Deps(
        session_factory=make_session_factory(engine),
        clock=clock or DatabaseClock(),
        token_ttl_seconds=settings.token_ttl_seconds,
        max_active_tokens=settings.max_active_tokens,
        redeem_failures_per_minute=settings.redeem_failures_per_minute,
    )
    return Container(settings=settings, engine=engine, deps=deps)
