"""`dlq list`, `list --group` and `show`: looking at dead letters never consumes one."""

from __future__ import annotations

import json

from tests.integration.dlq.builders import issued, redeemed


def listed(cli, *args):
    result = cli("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_shows_every_dead_letter_with_its_failure(cli, broker):
    first = broker.park(issued(), reason="exhausted", exception="OperationalError: db down")
    second = broker.park(b"not json at all", reason="poison", exception="ValidationError: junk",
                         attempts=1, message_id=None)

    result = cli("list")

    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert header == ["id", "type", "token", "attempts", "reason", "dead_lettered_at", "exception"]
    assert first in result.stdout
    assert "OperationalError: db down" in result.stdout
    assert "poison" in result.stdout
    rows = listed(cli)["messages"]
    assert [r["id"] for r in rows][0] == first
    assert rows[0]["type"] == "TokenIssued" and rows[0]["attempts"] == 5
    assert rows[1]["id"].startswith("dl-") and rows[1]["reason"] == "poison"
    assert second is None


def test_listing_five_times_drops_nothing_and_keeps_ids_and_order(cli, broker):
    for _ in range(3):
        broker.park(redeemed())
    broker.park(b"\x00binary", reason="poison", message_id=None)
    broker.park_by_broker(redeemed())
    assert broker.depth() == 5

    seen = [[r["id"] for r in listed(cli)["messages"]] for _ in range(5)]

    assert all(ids == seen[0] for ids in seen)
    assert len(set(seen[0])) == 5
    assert broker.depth() == 5  # inspection dropped nothing


def test_a_message_the_broker_dead_lettered_is_listed_from_its_x_death(cli, broker, topology):
    event = redeemed()
    broker.park_by_broker(event)

    (row,) = listed(cli)["messages"]

    assert row["message_id"] is None and row["id"].startswith("dl-")
    assert row["reason"] == "delivery_limit"
    assert row["broker_dead_lettered"] is True
    assert row["original_exchange"] == topology.names.events_exchange
    assert row["original_routing_key"] == "TokenRedeemed"
    assert row["original_queue"] == topology.names.consumer_queue("exchange-requests")
    assert row["token_id"] == event["token_id"]
    assert row["dead_lettered_at"]
    # And the id is the same on the next look.
    assert listed(cli)["messages"][0]["id"] == row["id"]


def test_list_limit_reads_only_the_oldest_and_says_how_many_there_are(cli, broker):
    ids = [broker.park(issued()) for _ in range(4)]

    result = cli("list", "--limit", "2")

    assert ids[0] in result.stdout and ids[1] in result.stdout and ids[2] not in result.stdout
    assert "showing 2 of 4" in result.stdout
    assert broker.depth() == 4


def test_group_counts_failures_by_type_exception_type_and_reason(cli, broker):
    for _ in range(3):
        broker.park(issued(), reason="exhausted", exception="OperationalError: connection refused")
    broker.park(issued(), reason="exhausted", exception="OperationalError: timeout")
    broker.park(b"{", reason="poison", exception="ValidationError: bad json", message_id=None)
    broker.park_by_broker(redeemed())

    groups = listed(cli, "--group")["groups"]

    assert groups == [
        {"type": "TokenIssued", "exception_type": "OperationalError", "reason": "exhausted",
         "count": 4},
        {"type": "TokenIssued", "exception_type": "ValidationError", "reason": "poison",
         "count": 1},
        {"type": "TokenRedeemed", "exception_type": "(broker: delivery_limit)",
         "reason": "delivery_limit", "count": 1},
    ]
    table = cli("list", "--group").stdout
    assert table.splitlines()[0].split() == ["count", "type", "exception_type", "reason"]
    assert broker.depth() == 6


def test_show_prints_headers_pretty_body_attempts_exception_and_stack(cli, broker, topology):
    event = issued(points=42)
    dead_letter_id = broker.park(event, exception="KeyError: 'expires_at'", attempts=5)

    result = cli("show", dead_letter_id)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"id:                    {dead_letter_id}" in out
    assert "attempts:              5" in out
    assert "exception:             KeyError: 'expires_at'" in out
    assert f'"x-original-exchange": "{topology.names.events_exchange}"' in out
    assert '  "points": 42,' in out.replace("    ", "  ")  # pretty-printed JSON body
    assert "Traceback (most recent call last)" in out
    assert broker.depth() == 1


def test_show_of_an_unknown_id_fails_clearly(cli, broker):
    broker.park(issued())

    result = cli("show", "no-such-id")

    assert result.exit_code != 0
    assert "unknown dead-letter id: no-such-id" in result.output
    assert broker.depth() == 1


def test_an_empty_parking_queue_says_so(cli, broker):
    result = cli("list")
    assert result.exit_code == 0
    assert "no dead letters" in result.stdout


def test_a_namespace_without_a_parking_queue_is_reported_plainly(cli):
    result = cli("list", BROKER_NAMESPACE="no-such-namespace")

    assert result.exit_code == 1
    assert "NOT_FOUND - no queue 'no-such-namespace.dead-letter'" in result.output
    assert "is BROKER_NAMESPACE right (no-such-namespace)?" in result.output
