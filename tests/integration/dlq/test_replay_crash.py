"""`kill -9` of the console in the middle of a replay: every message is either still parked
or was republished (at most the one in flight is both: a duplicate, never a loss)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.persistence.tables import DlqAudit
from tests.integration.dlq.builders import issued
from tests.support.service_env import service_env

EXE = Path(sys.executable).with_name("exchange-tokens")


def parked_for_replay(dlq_settings, broker, topology, n: int):  # type: ignore[no-untyped-def]
    """``n`` TokenIssued parked, a probe queue their replayed copies reach, and the
    console's environment with an actor of its own: (events, probe, actor, env)."""
    events = [issued() for _ in range(n)]
    for e in events:
        broker.park(e)
    probe = broker.probe(topology.names.events_exchange, "TokenIssued")
    actor = f"replayer-{uuid.uuid4().hex[:6]}"
    return events, probe, actor, service_env(dlq_settings, inherit=True,
                                           EXCHANGE_TOKENS_ACTOR=actor)


def replay_stopped_by(stop: int, env: dict[str, str], broker, probe: str, after: int) -> int:
    """Run `dlq replay --all --rate 5`, send ``stop`` once ``after`` copies reached the
    probe; the exit status."""
    process = subprocess.Popen([str(EXE), "dlq", "replay", "--all", "--rate", "5"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while broker.depth(probe) < after:
            assert time.monotonic() < deadline and process.poll() is None, "no replay happened"
            time.sleep(0.02)
        process.send_signal(stop)
        return process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_replay_killed_half_way_loses_nothing(dlq_settings, broker, topology, deps):
    events, probe, actor, env = parked_for_replay(dlq_settings, broker, topology, 10)

    # When the console is killed while replaying at 5 a second
    replay_stopped_by(signal.SIGKILL, env, broker, probe, after=3)

    # Then the broker requeues what it held, and every event is somewhere
    deadline = time.monotonic() + 10
    while broker.depth() + broker.depth(probe) < len(events):
        assert time.monotonic() < deadline, "messages went missing"
        time.sleep(0.05)
    replayed = [json.loads(body)["event_id"] for _, body in broker.drain(probe)]
    parked = [r["event_id"] for r in _parked_bodies(broker)]
    everything = {e["event_id"] for e in events}
    assert set(replayed) | set(parked) == everything  # lost: none
    assert len(replayed) == len(set(replayed))
    assert len(set(replayed) & set(parked)) <= 1  # duplicated: at most the one in flight
    assert 3 <= len(replayed) < len(events)
    # And the audit trail says who started it, even though it never finished
    with deps.session_factory() as session:
        (row,) = session.execute(select(DlqAudit).where(DlqAudit.actor == actor)).scalars()
    assert row.action == "replay" and row.result == {"status": "started"}


def _parked_bodies(broker):
    """Read the parking queue without consuming it (the console's own way)."""
    channel = broker.channel.connection.channel()
    out = []
    while True:
        method, _props, body = channel.basic_get(broker.parking, auto_ack=False)
        if method is None:
            break
        out.append(json.loads(body))
    channel.close()
    return out


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_replay_stopped_half_way_records_what_it_did(dlq_settings, broker, topology, deps,
                                                       stop):
    """Ctrl-C or SIGTERM (unlike kill -9) lets the console finish its audit row: status
    interrupted, with each id it acted on (it stayed 'started' with no outcome)."""
    _, probe, actor, env = parked_for_replay(dlq_settings, broker, topology, 8)
    assert replay_stopped_by(stop, env, broker, probe, after=2) != 0
    replayed = {json.loads(body)["event_id"] for _, body in broker.drain(probe)}
    with deps.session_factory() as session:
        (row,) = session.execute(select(DlqAudit).where(DlqAudit.actor == actor)).scalars()
    assert row.result["status"] == "interrupted", row.result
    assert "KeyboardInterrupt" in row.result["error"]
    # Every message republished is in the row, acted on and counted (at most the one in
    # flight when the signal came was republished and not yet acked: still parked).
    assert len(replayed) >= 2
    assert row.result["succeeded"] in (len(replayed), len(replayed) - 1)
    assert set(row.result["outcomes"]) == set(row.message_ids)
    assert len(row.message_ids) >= row.result["succeeded"]
