"""Every replay and purge leaves one audit row; `dlq history` lists them."""

from __future__ import annotations

import json
import re
import uuid

from sqlalchemy import select

from shared.persistence.tables import DlqAudit
from tests.integration.dlq.builders import issued


def audit_rows(deps, actor):
    with deps.session_factory() as session:
        return session.execute(
            select(DlqAudit).where(DlqAudit.actor == actor).order_by(DlqAudit.id)
        ).scalars().all()


def history_of(cli, actor):
    result = cli("history", "--json", "--limit", "200")
    assert result.exit_code == 0, result.output
    return [row for row in json.loads(result.stdout) if row["actor"] == actor]


def test_replay_and_purge_each_leave_one_row_with_the_outcome_per_id(cli, broker, deps, topology):
    actor = f"ops-{uuid.uuid4().hex[:6]}"
    replayed = broker.park(issued())
    stuck = broker.park(issued(), exchange=topology.delayed_exchange, routing_key="0.nobody")
    purged = broker.park(issued())

    cli("replay", "--id", replayed, "--id", stuck, user=actor)
    cli("purge", "--id", purged, "--yes", user=actor)

    replay_row, purge_row = audit_rows(deps, actor)
    assert replay_row.action == "replay" and replay_row.dry_run is False
    assert replay_row.message_ids == [replayed, stuck]
    assert replay_row.result["outcomes"][replayed] == "replayed"
    assert replay_row.result["outcomes"][stuck].startswith("unroutable")
    assert replay_row.result["succeeded"] == 1 and replay_row.result["failed"] == 1
    assert purge_row.action == "purge"
    assert purge_row.message_ids == [purged]
    assert purge_row.result["outcomes"] == {purged: "purged"}
    assert purge_row.at >= replay_row.at


def test_dry_runs_and_refusals_are_audited_too(cli, broker, deps):
    actor = f"ops-{uuid.uuid4().hex[:6]}"
    dead_letter_id = broker.park(issued())

    cli("replay", "--all", "--dry-run", user=actor)
    cli("replay", "--id", "missing-id", user=actor)

    dry, refused = audit_rows(deps, actor)
    assert dry.dry_run is True and dry.message_ids == [dead_letter_id]
    assert dry.result["verdicts"][dead_letter_id] == "token no longer active: no-op"
    assert refused.result == {"status": "refused", "unknown_ids": ["missing-id"]}


def test_history_lists_who_did_what_newest_first(cli, broker):
    actor = f"ops-{uuid.uuid4().hex[:6]}"
    first = broker.park(issued())
    second = broker.park(issued())
    cli("replay", "--id", first, user=actor)
    cli("purge", "--all", "--yes", "--actor", actor)  # --actor wins over $USER

    rows = history_of(cli, actor)

    assert [r["action"] for r in rows] == ["purge", "replay"]
    assert rows[0]["message_ids"] == [second] and rows[0]["dry_run"] is False
    assert rows[1]["result"]["outcomes"] == {first: "replayed"}
    table = cli("history", "--limit", "200").stdout
    assert table.splitlines()[0].split() == ["at", "actor", "action", "dry_run", "ids", "result"]
    assert re.search(rf"{actor}\s+purge\s+no\s+{second}\s+done: 1 ok, 0 failed", table)
