"""The outbox table: events written in the caller's transaction, read back by the relay.

Writing (:func:`record_events`) happens inside the state change's own transaction, so an
event commits, or vanishes, with it. Reading is the relay's: claim a batch, mark it
published, and release what the broker refused, all in one transaction of the relay's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, insert, text
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


# Claim, then mark: the rows are locked (SKIP LOCKED: other relays take other rows) and
# marked published, but nobody sees the mark before our COMMIT, which comes only after the
# broker confirmed; any failure rolls it back. Two statements, not UPDATE … WHERE id IN
# (SELECT … LIMIT n FOR UPDATE SKIP LOCKED): PostgreSQL may rescan such a subquery once
# per outer row, and the LIMIT window then slides over the whole backlog.
_CLAIM = text(
    "SELECT id FROM outbox WHERE published_at IS NULL"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= now())"
    " ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
)
_MARK = text(
    "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(:ids)"
    " RETURNING id, event_id, event_type, payload::text AS body, headers, created_at"
)
# attempts counts this one already (_MARK): 0.2 s after the first failure, doubling.
_UNMARK = text(
    "UPDATE outbox SET published_at = NULL, next_attempt_at = now()"
    " + make_interval(secs => least(30, 0.1 * power(2, least(attempts, 20))))"
    " WHERE id = ANY(:ids)"
)
# Losing this commit in a database crash only publishes the batch again (a duplicate,
# which consumers absorb), so it need not wait for the WAL flush.
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


def claim_unsent(conn: Connection, n: int) -> Sequence[int]:
    """Lock up to ``n`` unsent rows that are not backing off, oldest first."""
    return conn.execute(_CLAIM, {"n": n}).scalars().all()


def mark_published(conn: Connection, ids: Sequence[int]) -> Sequence[Row[Any]]:
    """Mark the claimed rows published (visible at COMMIT); return what to publish."""
    return conn.execute(_MARK, {"ids": list(ids)}).all()


def release_for_retry(conn: Connection, ids: Sequence[int]) -> None:
    """Rows the broker did not take: unsent again, not claimed before their backoff ends."""
    conn.execute(_UNMARK, {"ids": ids})


def commit_without_flush_wait(conn: Connection) -> None:
    """This transaction's COMMIT does not wait for the WAL flush (see ``_ASYNC_COMMIT``)."""
    conn.execute(_ASYNC_COMMIT)
