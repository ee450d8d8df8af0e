"""One chaos run: a cluster, the service on it, a steady load, the faults one after
another, the books after each and at the end."""

from __future__ import annotations

import logging
import secrets
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pika
from sqlalchemy import Engine, create_engine, text

from chaos import books
from chaos.cluster import PostgresPair, RabbitCluster
from chaos.faults import Fault, broker_faults, database_failover, process_kills
from chaos.load import Load, Outcomes
from chaos.ports import free_block
from chaos.service import Service
from shared.messaging import broker_nodes
from shared.messaging.names import Names
from shared.settings import normalise_database_url

log = logging.getLogger("chaos")

NAMESPACE = "chaos"
AFTER_S = 30.0  # "after a fault": this long after it was healed, or until the next one
DATABASE = "exchange_tokens_chaos"


@dataclass(frozen=True)
class Plan:
    minutes: float = 10.0  # the whole load, faults included
    rate: float = 200.0  # tokens issued per second
    ttl_s: int = 5
    hold_s: float = 20.0  # a node killed or paused this long
    partition_s: float = 30.0
    grace_s: float = 60.0  # an active token this long past its expiry counts as lost
    sweep_interval_s: float = 10.0


SHORT = Plan(minutes=2.0, rate=40.0, ttl_s=4, hold_s=10.0, partition_s=25.0)


@dataclass
class PhaseReport:
    fault: str
    injected: str = ""
    healed: str = ""
    started: float = 0.0
    healed_at: float = 0.0
    recovered_s: float | None = None
    errors_during: tuple[int, int] = (0, 0)
    errors_after: tuple[int, int] = (0, 0)
    lateness_during: list[float] = field(default_factory=list)
    lateness_after: list[float] = field(default_factory=list)
    verdict: books.Verdict | None = None


@dataclass
class Report:
    plan: Plan
    phases: list[PhaseReport]
    final: books.Verdict | None = None
    issued: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        verdicts = [p.verdict for p in self.phases] + [self.final]
        return all(v is not None and v.ok for v in verdicts)


def run(plan: Plan, cluster: RabbitCluster | None = None, work_dir: Path | None = None) -> Report:
    """Start whatever is not given, run the plan, stop what it started."""
    own_cluster = cluster is None
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="exchange-tokens-chaos-"))
    cluster = cluster or RabbitCluster.start()
    pair = PostgresPair.start()
    service: Service | None = None
    try:
        port = free_block(1)
        secret = secrets.token_urlsafe(32)
        env = {
            "DATABASE_URL": pair.url(DATABASE), "AMQP_URL": cluster.amqp_url,
            "BROKER_NAMESPACE": NAMESPACE, "JWT_SECRET": secret, "APP_ENV": "development",
            "TOKEN_TTL_SECONDS": str(plan.ttl_s), "MAX_ACTIVE_TOKENS": "100000",
            "REDEEM_FAILURES_PER_MINUTE": "100000", "WEB_CONCURRENCY": "2", "WEB_THREADS": "6",
            "SWEEP_INTERVAL_SECONDS": str(plan.sweep_interval_s), "LOG_LEVEL": "WARNING",
            "QUORUM_INITIAL_GROUP_SIZE": "3", "WORKER_METRICS_PORT": "0",
        }
        service = Service.build(env, port, work_dir)
        service.migrate()
        service.start()
        engine = create_engine(normalise_database_url(pair.url(DATABASE)), pool_pre_ping=True)
        load = Load(port, secret, plan.rate)
        load.credit_everyone()
        return _run_faults(plan, cluster, pair, service, load, engine)
    finally:
        if service is not None:
            service.stop()
        pair.stop()
        if own_cluster:
            cluster.stop()


def _run_faults(plan: Plan, cluster: RabbitCluster, pair: PostgresPair, service: Service,
                load: Load, engine: Engine) -> Report:
    faults: list[Fault] = [
        *broker_faults(cluster, NAMESPACE, plan.hold_s, plan.partition_s),
        database_failover(pair, hold_s=3.0),
        process_kills(service, hold_s=5.0),
    ]
    report = Report(plan, [PhaseReport(f.name) for f in faults])
    supervising = threading.Event()
    supervisor = threading.Thread(target=_supervise, args=(service, supervising), daemon=True)
    supervisor.start()
    load.start()
    started = time.monotonic()
    slot = plan.minutes * 60 / len(faults)
    try:
        for index, (fault, phase) in enumerate(zip(faults, report.phases, strict=True)):
            _sleep_until(started + index * slot + min(10.0, slot / 4))  # steady first
            phase.started = time.time()
            phase.injected = fault.inject()
            log.warning("fault injected", extra={"fault": phase.injected})
            time.sleep(fault.hold_s)
            phase.healed = fault.heal()
            phase.healed_at = time.time()
            log.warning("fault healed", extra={"fault": phase.healed})
            phase.recovered_s = _wait_recovery(load.outcomes, phase.started, timeout=120)
            phase.verdict = books.check(engine, load.outcomes, plan.grace_s,
                                        _dead_letters(cluster.amqp_url))
        _sleep_until(started + plan.minutes * 60)
    finally:
        load.finish()
    # Let every token reach its end: the last expiries, the sweep's safety net.
    _settle(engine, load.outcomes, plan)
    report.final = books.check(engine, load.outcomes, 0.0, _dead_letters(cluster.amqp_url))
    supervising.set()
    supervisor.join(5)
    _fill_figures(report, load.outcomes, engine)
    report.restarts = {p.name: p.restarts for p in service.processes.values()}
    return report


def _supervise(service: Service, done: threading.Event) -> None:
    while not done.wait(1.0):
        service.supervise()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _wait_recovery(outcomes: Outcomes, since: float, timeout: float) -> float | None:
    """Seconds from the fault until the API served three whole seconds without an error."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = int(time.time())
        with outcomes.lock:
            clean = [s for s in range(int(since), now)
                     if outcomes.served.get(s, 0) and not outcomes.failed.get(s, 0)]
            runs = [s for s in clean if s - 1 in clean and s - 2 in clean
                    and all(not outcomes.failed.get(t, 0) for t in range(s, now))]
        if runs:
            return max(0.0, runs[0] - 2 - since)
        time.sleep(1)
    return None


def _settle(engine: Engine, outcomes: Outcomes, plan: Plan) -> None:
    """Wait (bounded) until no token is active and every redeem has its request."""
    deadline = time.monotonic() + plan.ttl_s + plan.grace_s + plan.sweep_interval_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            left = conn.execute(text(
                "SELECT (SELECT count(*) FROM exchange_tokens WHERE status = 'active')"
                " + (SELECT count(*) FROM exchange_tokens t WHERE status = 'redeemed' AND NOT"
                " EXISTS (SELECT 1 FROM exchange_requests r WHERE r.token_id = t.id))"
                " + (SELECT count(*) FROM outbox WHERE published_at IS NULL)")).scalar_one()
        if left == 0:
            return
        time.sleep(1)


def _dead_letters(amqp_url: str) -> int:
    queue = Names(NAMESPACE).dead_letter_queue

    def count(url: str) -> int:
        params = pika.URLParameters(url)
        params.socket_timeout = 5
        connection = pika.BlockingConnection(params)
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()

    for _ in range(10):
        try:
            return broker_nodes.connect_first(amqp_url, "chaos dlq count", count,
                                              (pika.exceptions.AMQPError, OSError))
        except (pika.exceptions.AMQPError, OSError):
            time.sleep(2)
    return -1


def _fill_figures(report: Report, outcomes: Outcomes, engine: Engine) -> None:
    with engine.connect() as conn:
        refunded: dict[str, datetime] = dict(conn.execute(text(
            "SELECT token_id::text, created_at FROM ledger"
            " WHERE kind = 'refund' AND reason = 'expired'")).all())
    late: list[tuple[float, float]] = []  # (expires_at, lateness s)
    with outcomes.lock:
        for token_id, expires in outcomes.expires_at.items():
            at = refunded.get(token_id)
            if at is not None:
                due = datetime.fromisoformat(expires.replace("Z", "+00:00"))
                late.append((due.timestamp(), (at - due).total_seconds()))
        report.issued = len(outcomes.issued)
        report.statuses = dict(outcomes.statuses)
    ends = [p.started for p in report.phases[1:]] + [float("inf")]
    for phase, following in zip(report.phases, ends, strict=True):
        after = min(phase.healed_at + AFTER_S, following)  # never into the next fault
        phase.errors_during = outcomes.error_rate(phase.started, phase.healed_at)
        phase.errors_after = outcomes.error_rate(phase.healed_at, after)
        phase.lateness_during = [v for t, v in late if phase.started <= t < phase.healed_at]
        phase.lateness_after = [v for t, v in late if phase.healed_at <= t < after]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
