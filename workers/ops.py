"""``ops``: runs the console's replay and purge jobs, and samples the figures its charts
draw. Several workers may run it: a job is claimed by one (a conditional update), and a
sample is kept once per interval whoever writes it first."""

from __future__ import annotations

import logging
import os
import socket
import threading

from shared.messaging.names import Names
from shared.services import ops_jobs, ops_queries
from shared.services.deps import Deps
from shared.services.ops_dead_letters import ParkingQueue
from shared.settings import Settings

log = logging.getLogger("exchange_tokens.ops")

POLL_SECONDS = 1.0
SAMPLE_SECONDS = 10


class OpsJobs:
    def __init__(self, settings: Settings, deps: Deps, stop: threading.Event,
                 poll: float = POLL_SECONDS) -> None:
        self.settings, self.deps, self.stop_event, self.poll = settings, deps, stop, poll
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def run_once(self) -> bool:
        """Claim and run one job; False when none was waiting."""
        job_id = ops_jobs.claim(self.deps, self.worker_id)
        if job_id is None:
            return False
        log.info("ops job claimed", extra={"job_id": job_id})
        with ParkingQueue.open(self.settings) as queue:
            ops_jobs.run(self.deps, queue, job_id, self.worker_id, self.stop_event)
        return True

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if self.run_once():
                    continue
            except Exception as exc:  # noqa: BLE001 - the job row says what failed
                log.warning("ops job stopped", extra={"error": repr(exc)})
            self.stop_event.wait(self.poll)


class OpsSampler:
    def __init__(self, settings: Settings, deps: Deps, stop: threading.Event,
                 interval: int = SAMPLE_SECONDS) -> None:
        self.settings, self.deps, self.stop_event = settings, deps, stop
        self.interval = interval
        self.names = Names(settings.broker_namespace)

    def sample_once(self) -> None:
        figures = ops_queries.database_figures(self.deps, window_seconds=60)
        with ParkingQueue.open(self.settings) as queue:
            figures.update(ops_queries.broker_figures(queue.connection, self.names))
        ops_queries.record_sample(self.deps, figures, self.interval)

    def run(self) -> None:
        while True:
            try:
                self.sample_once()
            except Exception as exc:  # noqa: BLE001 - a missed sample is a gap in a chart
                log.warning("ops sample not taken", extra={"error": repr(exc)})
            if self.stop_event.wait(self.interval):
                return
