"""``sweep``: the safety net. Every ``sweep_interval_seconds``, restore every expired token
whatever happened to its timer (lost message, purged queue, broker down for long), in
bounded batches with SKIP LOCKED (several workers sweep side by side); then prune what only
grows (shared/services/retention.py)."""

from __future__ import annotations

import logging
import threading

from shared.batches import until_short
from shared.persistence.transactions import is_unavailable
from shared.services.deps import Deps
from shared.services.retention import prune
from shared.services.sweep import sweep
from workers import metrics

log = logging.getLogger("exchange_tokens.sweeper")


class Sweeper:
    def __init__(self, deps: Deps, stop: threading.Event, interval: float, batch: int) -> None:
        self.deps = deps
        self.stop_event = stop
        self.interval = interval
        self.batch = batch

    def sweep_once(self) -> int:
        total = 0
        for restored in until_short(lambda: sweep(self.deps, limit=self.batch), self.batch,
                                    stop=self.stop_event):
            total += len(restored)
            metrics.refunded(restored, metrics.SWEEP_RESTORED)
        if total:
            log.info("sweep restored tokens whose timers did not fire", extra={"count": total})
        pruned = prune(self.deps)
        if pruned.outbox or pruned.idempotency_keys or pruned.redeem_windows:
            log.info("old rows pruned", extra={"outbox": pruned.outbox,
                                              "idempotency_keys": pruned.idempotency_keys,
                                              "redeem_windows": pruned.redeem_windows})
        return total

    def run(self) -> None:
        log.info("sweeper started", extra={"interval_s": self.interval})
        while True:  # at start (catch up after downtime), then every interval
            try:
                self.sweep_once()
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("database unavailable; sweep skipped", extra={"error": repr(exc)})
                else:
                    log.exception("sweep failed")
            if self.stop_event.wait(self.interval):
                break
        log.info("sweeper stopped")
