"""Reading the whole parking queue for the ops console, one reader at a time.

A read fetches every message without ack and puts it back (no delivery attempt spent);
while one reader holds them, another sees them as in flight, not ready: two reads at once
would each see part of the queue, and a depth taken meanwhile would be short. So readers
queue up on a PostgreSQL advisory lock (every API process and worker shares it), held only
for the fetch-and-put-back; a job's replay holds its own chunk, and what it holds is
reported by its progress instead.
"""

from __future__ import annotations

from sqlalchemy import text

from shared.services.deps import Deps
from shared.services.ops_dead_letters import DeadLetter, ParkingQueue

LOCK_KEY = "exchange-tokens ops: parking queue read"
WAIT_SECONDS = 15


class ReaderBusy(RuntimeError):
    """Another read held the parking queue longer than we would wait."""


def read_all(deps: Deps, queue: ParkingQueue, limit: int | None = None) -> tuple[int, list[DeadLetter]]:
    """(depth, the letters read, oldest first), taken together under the lock."""
    with deps.engine.connect() as conn:
        conn.execute(text(f"SET lock_timeout = '{WAIT_SECONDS}s'"))
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK_KEY})
        except Exception as exc:  # 55P03 lock_not_available: another read is that long
            if getattr(getattr(exc, "orig", None), "pgcode", None) == "55P03":
                raise ReaderBusy("the parking queue is being read; retry") from None
            raise
        try:
            depth = queue.depth()
            return depth, queue.peek(limit)
        finally:
            conn.rollback()  # ends the transaction: releases the lock
