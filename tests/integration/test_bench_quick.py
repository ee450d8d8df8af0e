"""The benchmark suite runs end to end (``python -m bench --quick``), so it cannot rot.

Performance goals are reported by the benchmark (PASS / FAIL in its table), not asserted
here: this shared 2-core machine is too noisy for that. What is asserted: it exits 0,
prints one table, and writes a results file with every figure measured (a number, not
"not measured"), each beside its baseline where it has one, plus the machine it ran on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pika
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {"1 POST token", "2 refunds", "3 expiry lateness", "4 outbox relay", "5 memory",
           "6 cost curve", "7 soak"}


def test_quick_benchmark_prints_one_table_and_writes_every_figure(
    tmp_path: Path, database_url: str, amqp_url: str
) -> None:
    # Given the servers this test session uses (the bench makes its own database on it)
    out = tmp_path / "results.json"
    env = {**os.environ, "DATABASE_URL": database_url, "AMQP_URL": amqp_url}

    # When the quick benchmark runs
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )

    # Then it succeeds and prints one table
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("figure  ") == 1, proc.stdout
    for figure in FIGURES:
        assert figure in proc.stdout
    assert "not measured" not in proc.stdout, proc.stdout

    # And the results file holds every figure, measured, with the machine it ran on
    doc = json.loads(out.read_text())
    for key in ("date", "cores", "python", "postgres", "rabbitmq"):
        assert doc["machine"][key], key
    assert {f["figure"] for f in doc["figures"]} == FIGURES
    for f in doc["figures"]:
        assert f["not_measured"] is None, f
        assert isinstance(f["value"], int | float), f
        if f["baseline"] is not None:
            assert isinstance(f["baseline_value"], int | float), f
            assert isinstance(f["ratio"], int | float), f
        if f["goal"] is not None:
            assert isinstance(f["passed"], bool), f

    # And it removed the database and the broker namespace it created
    world = doc["world"]
    assert not _database_exists(database_url, world["database"])
    assert not _queue_exists(amqp_url, f"{world['broker_namespace']}.expire")


def _database_exists(database_url: str, name: str) -> bool:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar() is not None
    finally:
        engine.dispose()


def _queue_exists(amqp_url: str, queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:  # 404 NOT_FOUND
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_the_raw_publish_baseline_keeps_a_bounded_window_and_every_message_arrives(
    amqp_url: str, broker_namespace: str
) -> None:
    # Given a fresh quorum queue of this test session's namespace
    from bench.raw_publish import PipelinedPublisher

    queue = f"{broker_namespace}.bench-raw-check"
    params = pika.URLParameters(amqp_url)
    publisher = PipelinedPublisher(params, queue, [b"x%d" % i for i in range(500)], window=50)
    try:
        # When 500 messages are published with confirms, at most 50 unconfirmed at a time
        publisher.run(timeout_s=60)

        # Then all were confirmed, the window held, and the queue has every one of them
        assert (publisher.acked, publisher.nacked, publisher.returned) == (500, 0, 0)
        assert 1 < publisher.max_in_flight <= 50
        connection = pika.BlockingConnection(params)
        try:
            declared = connection.channel().queue_declare(queue, passive=True)
            assert declared.method.message_count == 500
        finally:
            connection.close()
    finally:
        connection = pika.BlockingConnection(params)
        try:
            connection.channel().queue_delete(queue)
        finally:
            connection.close()
