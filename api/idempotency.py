"""Idempotency-Key (Stripe's semantics), stored in PostgreSQL in the effect's transaction.

The key row is claimed FIRST, by ``INSERT ... ON CONFLICT``: a second request with the
same key blocks on that row's lock until the first commits (then it finds the stored
response and replays it) or rolls back (then it goes ahead itself). So concurrent
requests with one key make one effect, with no Python lock, across processes. The
response is written into the row before the commit, so the effect and its key commit
together or not at all.

A key is the caller's (docs/api.md, "Idempotency"): one row per (caller, key), whatever the endpoint;
the fingerprint covers the endpoint, so a key sent to another endpoint is a conflict.

A refusal of the service (409 ``insufficient_points``, ``too_many_active_tokens``) is a
first response too: it is stored with what the service keeps (the sweep), and replayed
(its code and details; the message in the replay's language) even if the refusal would
no longer hold, as the contract's "the first response again" says. Bodies refused as
400 or 422 never get here and store nothing; an unexpected error rolls the claim back
with everything else, so the request can be sent again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from api.errors import domain_status
from shared.errors import DomainError, IdempotencyConflict
from shared.persistence.tables import IdempotencyKey
from shared.persistence.transactions import retry_transaction, unit_of_work
from shared.services.deps import Deps

WINDOW = timedelta(hours=24)
PENDING = 0  # response_status of a claim whose transaction has not committed yet


@dataclass(frozen=True)
class Scope:
    """One caller's key, the endpoint it was sent to, and the fingerprint of the request
    it came with (endpoint included)."""

    caller: str
    endpoint: str
    key: str
    request_hash: str


def fingerprint(*parts: Any) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Outcome:
    """What a request produced: a response to send (and store), or a refusal to raise."""

    status: int = 200
    body: Any = None
    refusal: Exception | None = None  # a DomainError, raised after the commit
    replayed: bool = False
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def _claim(session: Session, deps: Deps, scope: Scope) -> IdempotencyKey | None:
    """Claim the key, or return the live row that already holds it. An entry older than
    the 24 h window is taken over as if it were absent."""
    now = deps.clock.now()
    insert = pg_insert(IdempotencyKey).values(
        caller=scope.caller, endpoint=scope.endpoint, key=scope.key,
        request_hash=scope.request_hash, response_status=PENDING, response_body={},
        created_at=now,
    )
    stmt = insert.on_conflict_do_update(
        index_elements=[IdempotencyKey.caller, IdempotencyKey.key],
        set_={"endpoint": insert.excluded.endpoint,
              "request_hash": insert.excluded.request_hash, "response_status": PENDING,
              "response_body": {}, "created_at": insert.excluded.created_at},
        where=IdempotencyKey.created_at <= now - WINDOW,
    ).returning(IdempotencyKey.key)
    if session.execute(stmt).first() is not None:
        return None
    # READ COMMITTED: this new statement sees the row the conflict waited for.
    return session.execute(select(IdempotencyKey).where(*_pk(scope))).scalar_one()


def _pk(scope: Scope) -> tuple[Any, ...]:
    return (IdempotencyKey.caller == scope.caller, IdempotencyKey.key == scope.key)


@retry_transaction()
def _execute(deps: Deps, scope: Scope | None, effect: Callable[[Session], Outcome]) -> Outcome:
    with unit_of_work(deps.session_factory) as session:
        if scope is not None:
            held = _claim(session, deps, scope)
            if held is not None:
                if held.request_hash != scope.request_hash:
                    raise IdempotencyConflict("key reused with another request")
                return Outcome(status=held.response_status, body=held.response_body,
                               replayed=True)
        outcome = effect(session)
        if scope is not None:
            status, body = _stored(outcome)
            session.execute(update(IdempotencyKey).where(*_pk(scope)).values(
                response_status=status, response_body=body))
        session.commit()
    return outcome


def _stored(outcome: Outcome) -> tuple[int, Any]:
    """What a replay answers: the response, or the refusal's status, code and details
    (its message is written in the language of each replay, by the error path)."""
    refusal = outcome.refusal
    if refusal is None:
        return outcome.status, outcome.body
    if not isinstance(refusal, DomainError):
        raise refusal  # not an answer of the service: roll back, store nothing
    return domain_status(refusal), {"error": {"code": refusal.code,
                                              "details": refusal.details}}


def is_stored_refusal(outcome: Outcome) -> bool:
    return outcome.replayed and outcome.status >= 400


def run(deps: Deps, scope: Scope | None, effect: Callable[[Session], Outcome]) -> Outcome:
    """Run ``effect`` in one transaction, at most once per key; raise its refusal after the
    commit (so what the service keeps on refusal, e.g. the sweep, is kept)."""
    outcome = _execute(deps, scope, effect)
    for hook in outcome.after_commit:
        hook()
    if outcome.refusal is not None:
        raise outcome.refusal
    return outcome
