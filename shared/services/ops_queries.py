"""The timers and queues as ops see them: expiry lateness, tokens past due not yet
refunded, the outbox backlog, the dead-letter depth and the consumers on each queue.

Every query is bounded: the lateness reads at most the newest ``LATENESS_ROWS`` outbox rows
(a primary-key range, whatever the table's size), the others use the partial indexes on
active tokens and unpublished outbox rows. The broker figures come from passive declares,
which read counters and never fetch a message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pika
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import desc, select, text

from shared.expiry_rules import due_sql
from shared.messaging.names import Names
from shared.messaging.topology import CONSUMERS
from shared.persistence.tables import OpsSample
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps

LATENESS_WINDOW_SECONDS = 300
LATENESS_ROWS = 200_000

# TokenExpired rows written by the refund (restored = true) carry the token's expires_at;
# the row's created_at is the refund's commit time: the difference is the lateness.
_LATENESS = text("""
    WITH recent AS (
        SELECT created_at - (payload->>'expires_at')::timestamptz AS late
        FROM outbox
        WHERE id > (SELECT coalesce(max(id), 0) FROM outbox) - :rows
          AND event_type = 'TokenExpired' AND payload->>'restored' = 'true'
          AND created_at >= now() - make_interval(secs => :window)
    )
    SELECT count(*) AS n,
           percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (
               ORDER BY extract(epoch FROM late)) AS p,
           max(extract(epoch FROM late)) AS worst
    FROM recent
""")
_PAST_DUE = text(
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(expires_at)), 0)"
    " FROM exchange_tokens WHERE " + due_sql()
)
_BACKLOG = text(
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
    " FROM outbox WHERE published_at IS NULL"
)


def database_figures(deps: Deps, window_seconds: float = LATENESS_WINDOW_SECONDS) -> dict[str, Any]:
    """The figures PostgreSQL knows, read in one short read-only transaction."""
    with unit_of_work(deps.session_factory) as session:
        late = session.execute(_LATENESS, {"rows": LATENESS_ROWS,
                                           "window": float(window_seconds)}).one()
        past_due, oldest_due = session.execute(_PAST_DUE).one()
        backlog, backlog_age = session.execute(_BACKLOG).one()
    p50, p90, p99 = late.p if late.p else (None, None, None)
    return {
        "expiry_lateness": {"window_seconds": window_seconds, "refunds": int(late.n),
                            "p50": p50, "p90": p90, "p99": p99, "max": _float(late.worst)},
        "past_due": {"tokens": int(past_due), "oldest_seconds": float(oldest_due)},
        "outbox": {"backlog": int(backlog), "oldest_age_seconds": float(backlog_age)},
    }


def broker_figures(connection: pika.BlockingConnection, names: Names) -> dict[str, Any]:
    """Dead-letter depth and, per consumer queue, ready messages and consumers."""
    queues = {}
    for consumer in (*CONSUMERS, None):
        name = names.dead_letter_queue if consumer is None else names.consumer_queue(consumer)
        queues[name] = _queue(connection, name)
    depth = queues[names.dead_letter_queue]
    return {"dead_letters": {"depth": depth["messages"] if depth else None},
            "queues": [{"queue": q, **(v or {"messages": None, "consumers": None})}
                       for q, v in queues.items()]}


def _queue(connection: pika.BlockingConnection, name: str) -> dict[str, int] | None:
    channel = connection.channel()
    try:
        ok = channel.queue_declare(name, passive=True).method
        return {"messages": int(ok.message_count), "consumers": int(ok.consumer_count)}
    except ChannelClosedByBroker:  # 404: not declared (yet)
        return None
    finally:
        if channel.is_open:
            channel.close()


def record_sample(deps: Deps, figures: dict[str, Any], bucket_seconds: int) -> bool:
    """Keep one sample per ``bucket_seconds``: several workers sampling at once write one
    row (the bucket is the key), the first to commit wins. True if this one was kept."""
    with unit_of_work(deps.session_factory) as session:
        kept = session.execute(text(
            "INSERT INTO ops_samples (at, figures) VALUES (to_timestamp("
            "floor(extract(epoch FROM now()) / :b) * :b), CAST(:f AS jsonb))"
            " ON CONFLICT (at) DO NOTHING RETURNING at"
        ), {"b": bucket_seconds, "f": _json(figures)}).first()
        session.execute(text("DELETE FROM ops_samples WHERE at < now() - interval '2 hours'"))
        session.commit()
    return kept is not None


def samples(deps: Deps, since_seconds: float = 3600) -> list[tuple[datetime, dict[str, Any]]]:
    """The samples of the last ``since_seconds``, oldest first."""
    with unit_of_work(deps.session_factory) as session:
        rows = session.execute(
            select(OpsSample.at, OpsSample.figures)
            .where(OpsSample.at >= text("now() - make_interval(secs => :s)"))
            .order_by(desc(OpsSample.at)).limit(2000), {"s": float(since_seconds)}
        ).all()
    return [(r.at, r.figures) for r in reversed(rows)]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
