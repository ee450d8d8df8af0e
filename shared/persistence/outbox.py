"""Writing events to the outbox, in the caller's transaction (transactional outbox)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.orm import Session

from schemas.events import Event
from shared.logs import message_id_var, request_id_var
from shared.messaging.names import H_CAUSATION_ID, H_REQUEST_ID
from shared.persistence.tables import OutboxMessage


def event_headers() -> dict[str, str]:
    """Carry what caused an event (an HTTP request, a consumed message) to the worker's logs."""
    headers = {}
    if (rid := request_id_var.get()) is not None:
        headers[H_REQUEST_ID] = rid
    if (mid := message_id_var.get()) is not None:
        headers[H_CAUSATION_ID] = mid
    return headers


def record_events(session: Session, events: Sequence[Event]) -> None:
    """Queue events for the relay; they commit, or vanish, with the state change."""
    if not events:
        return
    headers = event_headers()
    session.execute(
        insert(OutboxMessage),
        [
            {
                "event_id": e.event_id,
                "event_type": e.type,
                "payload": e.model_dump(mode="json"),
                "headers": headers,
            }
            for e in events
        ],
    )
