"""The worker process under signals: kill -9 loses no refund, SIGTERM exits cleanly."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time

from sqlalchemy import text

from shared import services
from tests.support.workers import classify, purge_queues, wait_until

NO_SWEEP = ["--role", "relay", "--role", "schedule-expiry", "--role", "expire"]


def refunded(engine, ids) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM ledger WHERE kind = 'refund'"
                                 " AND token_id = ANY(:ids)"), {"ids": ids}).scalar_one()


def test_kill_9_of_a_worker_mid_refunds_then_a_restart_restores_every_token_once(
    container, deps, spawn, topology, tmp_path
):
    import pika

    channel = pika.BlockingConnection(pika.URLParameters(container.settings.amqp_url)).channel()
    purge_queues(channel, topology)
    channel.connection.close()
    # Given a worker (no sweep: the broker path alone must be exact) and 1,000 tokens
    # expiring over about one second
    worker = spawn("worker", *NO_SWEEP, "--metrics-port", "0", stderr_path=tmp_path / "w1.log")
    users = [f"kill-{i}-{time.time_ns()}" for i in range(20)]
    for u in users:
        services.credit(deps, u, 1000)
    ids = []
    for i in range(1000):
        short = dataclasses.replace(deps, token_ttl_seconds=2 + i % 2, max_active_tokens=1000)
        ids.append(services.issue(short, users[i % 20], 1).token.id)
    # When it is killed with -9 while refunds are under way (unacked batches in hand)
    wait_until(lambda: refunded(container.engine, ids) >= 50, timeout=30, interval=0.01)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    at_kill = refunded(container.engine, ids)
    assert at_kill < 1000, "the kill came too late to prove anything"
    # And a new worker starts
    spawn("worker", *NO_SWEEP, "--metrics-port", "0", stderr_path=tmp_path / "w2.log")
    wait_until(lambda: not classify(container.engine, ids)["lost"], timeout=60, interval=0.2)
    time.sleep(1)
    # Then every token is classified "once": none lost, none refunded twice
    result = classify(container.engine, ids)
    assert (len(result["lost"]), len(result["duplicated"]), len(result["once"])) == (0, 0, 1000)
    assert all(services.balance(deps, u) == 1000 for u in users)


def test_sigterm_stops_a_busy_worker_with_status_0_within_10_seconds(
    container, deps, user, spawn, tmp_path
):
    log_path = tmp_path / "worker.log"
    worker = spawn("worker", "--metrics-port", "0", stderr_path=log_path)
    services.credit(deps, user, 100)
    short = dataclasses.replace(deps, token_ttl_seconds=1, max_active_tokens=100)
    for _ in range(10):
        services.issue(short, user, 1)
    wait_until(lambda: b"consumer started" in log_path.read_bytes(), timeout=15)
    time.sleep(1.5)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - started < 10
    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # stderr is pure JSON, one per line
    assert all({"ts", "level", "event"} <= r.keys() for r in records)
    assert any(r["event"] == "worker stopped" for r in records)
    assert any(r["event"] == "points restored" for r in records)


def scrape(port: int) -> dict[str, float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:  # noqa: S310
            body = r.read().decode()
    except OSError:
        return {}
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_the_worker_reports_consuming_refunds_and_lateness_on_its_metrics_port(
    container, deps, user, spawn, tmp_path
):
    from tests.e2e.test_run_all import free_port

    port = free_port()
    spawn("worker", "--metrics-port", str(port), stderr_path=tmp_path / "w.log")
    consumers = ["schedule-expiry", "expire", "exchange-requests", "audit"]
    wait_until(lambda: all(scrape(port).get(f"exchange_tokens_worker_consuming{{consumer={c}}}")
                           == 1 for c in consumers), timeout=20, interval=0.2)
    services.credit(deps, user, 30)
    short = dataclasses.replace(deps, token_ttl_seconds=1)
    for _ in range(3):
        services.issue(short, user, 10)
    wait_until(lambda: scrape(port).get("exchange_tokens_refunds_total", 0)
               + scrape(port).get("exchange_tokens_sweep_restored_total", 0) >= 3, timeout=20,
               interval=0.2)
    m = scrape(port)
    assert m["exchange_tokens_refund_lateness_seconds_count"] >= 3
    assert m["exchange_tokens_points_restored_total{reason=expired}"] >= 30
    assert "exchange_tokens_outbox_backlog" in m
    assert "exchange_tokens_dead_letter_depth" in m
    assert "exchange_tokens_active_tokens_past_expiry" in m
