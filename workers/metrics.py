"""Prometheus metrics of the worker process (served on the port workers/metrics_port.py
chooses)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REFUNDS = Counter("exchange_tokens_refunds_total", "Tokens refunded by the expire consumer")
REFUND_LATENESS = Histogram(
    "exchange_tokens_refund_lateness_seconds",
    "restored_at - expires_at of each refund applied by the workers",
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300),
)
SWEEP_RESTORED = Counter(
    "exchange_tokens_sweep_restored_total", "Tokens restored by the periodic sweep"
)
OUTBOX_BACKLOG = Gauge("exchange_tokens_outbox_backlog", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge(
    "exchange_tokens_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row"
)
RELAY_PUBLISHED = Counter("exchange_tokens_relay_published_total", "Events published")
RELAY_FAILED = Counter(
    "exchange_tokens_relay_failed_total", "Events nacked or unroutable (kept for a retry)"
)
MESSAGES = Counter(
    "exchange_tokens_messages_total", "Messages handled", ["consumer", "outcome"]
)
RETRIES = Counter("exchange_tokens_retries_total", "Messages sent back for a retry", ["consumer"])
DEAD_LETTERS = Counter(
    "exchange_tokens_dead_letters_total", "Messages dead-lettered", ["consumer", "reason"]
)
POINTS_RESTORED = Counter(
    "exchange_tokens_points_restored_total", "Points given back to balances", ["reason"]
)
DEAD_LETTER_DEPTH = Gauge(
    "exchange_tokens_dead_letter_depth", "Messages waiting in the parking queue"
)
PAST_EXPIRY = Gauge(
    "exchange_tokens_active_tokens_past_expiry",
    "Active tokens more than 5 s past expires_at: lost timers the sweep has not caught yet",
)
CONSUMING = Gauge(
    "exchange_tokens_worker_consuming",
    "1 while the consumer is registered on its queue and its loop ran recently",
    ["consumer"],
)
REDELAYED = Counter(
    "exchange_tokens_expiry_redelayed_total", "Expiry messages that came early, delayed again"
)


def refunded(restored: list, counter: Counter) -> None:
    """Count refunds applied by a worker: tokens, points, and each one's lateness."""
    counter.inc(len(restored))
    for r in restored:
        POINTS_RESTORED.labels(r.reason).inc(r.points)
        if r.expires_at is not None:
            REFUND_LATENESS.observe((r.restored_at - r.expires_at).total_seconds())

