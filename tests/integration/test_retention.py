"""Retention: old published outbox rows and expired idempotency keys go; nothing else."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, insert, select

from shared.persistence.tables import IdempotencyKey, OutboxMessage
from shared.services.retention import prune


def _outbox(deps, age_days, published=True):
    event_id = uuid.uuid4()
    with deps.session_factory() as s:
        now = s.execute(select(func.now())).scalar_one()
        s.execute(insert(OutboxMessage).values(
            event_id=event_id, event_type="TokenIssued", payload={}, headers={},
            created_at=now - timedelta(days=age_days),
            published_at=(now - timedelta(days=age_days)) if published else None,
        ))
        s.commit()
    return event_id


def _key(deps, caller, age_hours):
    with deps.session_factory() as s:
        now = s.execute(select(func.now())).scalar_one()
        s.execute(insert(IdempotencyKey).values(
            caller=caller, endpoint="issue", key=f"k{age_hours}", request_hash="h",
            response_status=201, response_body={}, created_at=now - timedelta(hours=age_hours),
        ))
        s.commit()


def _outbox_ids(deps, ids):
    with deps.session_factory() as s:
        return set(s.execute(
            select(OutboxMessage.event_id).where(OutboxMessage.event_id.in_(ids))).scalars())


def test_prune_drops_old_published_events_and_keeps_recent_and_unsent_ones(deps):
    old, recent = _outbox(deps, 8), _outbox(deps, 1)
    unsent = _outbox(deps, 30, published=False)  # never published: must never go
    pruned = prune(deps, batch=1)  # batch of one: the loop must take every old row
    assert pruned.outbox >= 1
    assert _outbox_ids(deps, [old, recent, unsent]) == {recent, unsent}


def test_prune_drops_idempotency_keys_past_their_24_hour_window_only(deps, user):
    _key(deps, user, 25)
    _key(deps, user, 23)
    prune(deps)
    with deps.session_factory() as s:
        keys = set(s.execute(
            select(IdempotencyKey.key).where(IdempotencyKey.caller == user)).scalars())
    assert keys == {"k23"}
