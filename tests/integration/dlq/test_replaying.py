"""`dlq replay`: a transactional move back to the original exchange and routing key."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

from schemas.events import TokenRedeemed
from shared import services
from shared.messaging.names import H_ATTEMPTS, H_EXCEPTION, H_REASON, H_REPLAYED, H_STACK
from shared.messaging.topology import DELAY_LEVELS, delay_routing_key
from shared.services.deps import Deps
from tests.integration.dlq.builders import (
    expire_routing_key,
    expiry_command,
    issued,
    logged,
    redeemed,
)
from tests.support.clock import FixedClock


def ids_in_parking(cli):
    return [r["id"] for r in json.loads(cli("list", "--json").stdout)["messages"]]


def test_replay_id_moves_exactly_that_message_to_its_original_exchange(cli, broker, topology):
    events = [issued() for _ in range(3)]
    ids = [broker.park(e) for e in events]
    probe = broker.probe(topology.names.events_exchange, "TokenIssued")

    result = cli("replay", "--id", ids[1])

    assert result.exit_code == 0, result.output
    assert "replayed 1 message(s)" in result.stdout
    ((props, body),) = broker.drain(probe)
    assert json.loads(body) == events[1]
    assert props.message_id == ids[1]
    assert props.delivery_mode == 2
    assert props.headers[H_ATTEMPTS] == 0  # its full retries again
    assert props.headers[H_REPLAYED] == 1
    assert not {H_REASON, H_EXCEPTION, H_STACK} & set(props.headers)
    assert ids_in_parking(cli) == [ids[0], ids[2]]
    (line,) = [entry for entry in logged(result) if entry["event"] == "message replayed"]
    assert line["message_id"] == ids[1]
    assert line["type"] == "TokenIssued"
    assert line["token_id"] == events[1]["token_id"]
    assert line["level"] == "info" and "ts" in line


def test_replaying_a_replayed_message_counts_the_replays(cli, broker, topology):
    event = issued()
    message_id = broker.park(event)
    probe = broker.probe(topology.names.events_exchange, "TokenIssued")
    cli("replay", "--id", message_id)
    ((props, body),) = broker.drain(probe)
    # It fails again: the worker parks the replayed copy, headers and all.
    broker.channel.basic_publish(topology.names.dead_letter_exchange, "", body, props)

    assert cli("replay", "--id", message_id).exit_code == 0

    ((props, _),) = broker.drain(probe)
    assert props.headers[H_REPLAYED] == 2


def test_a_timer_replays_through_the_delayed_exchange_to_the_expire_queue(cli, broker, topology):
    command = expiry_command(uuid.uuid4(), "u-1", 5, datetime.now(UTC))
    message_id = broker.park(command, exchange=topology.delayed_exchange,
                             routing_key=expire_routing_key(), queue="expire")

    result = cli("replay", "--id", message_id)

    assert result.exit_code == 0, result.output
    ((props, body),) = broker.drain(topology.names.consumer_queue("expire"))
    assert json.loads(body) == command and props.message_id == message_id
    assert broker.depth() == 0


def test_replay_all_moves_every_message_including_the_brokers_own(cli, broker, topology):
    events = [redeemed() for _ in range(3)]
    for e in events:
        broker.park(e)
    broker.park_by_broker(events[0] | {"event_id": str(uuid.uuid4())})
    probe = broker.probe(topology.names.events_exchange, "TokenRedeemed")

    result = cli("replay", "--all", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replayed"] == 4 and report["failed"] == 0
    assert broker.depth() == 0
    arrived = broker.drain(probe)
    assert len(arrived) == 4
    assert {json.loads(b)["event_id"] for _, b in arrived} >= {e["event_id"] for e in events}
    broker_style = [p for p, _ in arrived if p.message_id is None]
    assert len(broker_style) == 1 and "x-death" not in broker_style[0].headers


def test_an_unroutable_replay_leaves_the_dead_letter_parked_and_says_so(cli, broker, topology):
    stuck = broker.park(issued(), exchange=topology.delayed_exchange, routing_key="0.nobody")
    gone = broker.park(issued(), exchange="no-such-exchange", routing_key="TokenIssued")
    fine = broker.park(issued())

    result = cli("replay", "--all")

    assert result.exit_code == 1
    assert "unroutable" in result.stdout and "404" in result.stdout
    assert "replayed 1 message(s), 2 left parked" in result.stdout
    assert ids_in_parking(cli) == [stuck, gone]  # in their original order
    assert fine not in ids_in_parking(cli)
    failures = [e for e in logged(result) if e["event"] == "message replay failed"]
    assert {e["message_id"] for e in failures} == {stuck, gone}


def test_rate_limits_replays_per_second(cli, broker):
    for _ in range(5):
        broker.park(issued())

    started = time.monotonic()
    result = cli("replay", "--all", "--rate", "10")
    elapsed = time.monotonic() - started

    assert result.exit_code == 0, result.output
    assert broker.depth() == 0
    assert elapsed >= 0.4  # 5 replays at 10 per second: 4 intervals of 0.1 s at least


def test_a_paced_replay_longer_than_the_brokers_ack_timeout_is_refused_before_it_starts(
        cli, broker, topology, monkeypatch):
    # Held unacknowledged past consumer_timeout, the channel would be closed half-way.
    from shared.services import dead_letter_console

    monkeypatch.setattr(dead_letter_console, "MAX_HOLD_SECONDS", 1.0)
    parked = [broker.park(issued()) for _ in range(3)]
    probe = broker.probe(topology.names.events_exchange, "TokenIssued")

    result = cli("replay", "--all", "--rate", "2")  # 3 at 2/s: 1.5 s > 1 s

    assert result.exit_code != 0
    assert "Replay at most 2 at a time (--all --limit 2" in result.output
    assert "nothing changed" in result.output
    assert ids_in_parking(cli) == parked  # all back, in their order
    assert broker.drain(probe) == []
    history = cli("history", "--json")
    assert '"refused"' in history.stdout

    # Within the bound, the same replay goes ahead.
    result = cli("replay", "--all", "--limit", "2", "--rate", "2")
    assert result.exit_code == 0, result.output
    assert ids_in_parking(cli) == parked[2:]


def test_unknown_ids_are_refused_and_nothing_changes(cli, broker, topology):
    known = broker.park(issued())
    probe = broker.probe(topology.names.events_exchange, "TokenIssued")

    result = cli("replay", "--id", known, "--id", "bogus-1")

    assert result.exit_code != 0
    assert "unknown dead-letter id(s): bogus-1" in result.output
    assert "nothing changed" in result.output
    assert broker.drain(probe) == []
    assert ids_in_parking(cli) == [known]


def test_replay_needs_ids_or_all(cli, broker):
    assert cli("replay").exit_code == 2
    assert cli("replay", "--all", "--id", "x").exit_code == 2


def _past_deps(deps: Deps) -> Deps:
    """Services whose clock is an hour ago: a token issued with it is already expired."""
    return Deps(session_factory=deps.session_factory,
                clock=FixedClock(datetime.now(UTC) - timedelta(hours=1)))


def test_dry_run_says_what_each_message_would_do_and_changes_nothing(
    cli, broker, topology, deps, user, merchant
):
    # Given tokens in every state the consumers can meet
    services.credit(deps, user, 1000)
    restored = services.issue(_past_deps(deps), user, 10).token
    services.expire(deps, restored.id)
    active = services.issue(deps, user, 30).token
    redeemed_token = services.issue(deps, user, 40).token
    services.redeem(deps, redeemed_token.code, merchant)
    unrecorded = services.issue(deps, user, 6).token
    services.redeem(deps, unrecorded.code, "m-1")  # the merchant of builders.redeemed
    # Last: issue and redeem sweep the user's expired tokens first.
    overdue = services.issue(_past_deps(deps), user, 20).token
    services.create_exchange_request(deps, TokenRedeemed(
        token_id=redeemed_token.id, user_id=user, points=40, merchant_id=merchant))
    balance = services.balance(deps, user)

    def timer(token):
        return broker.park(
            expiry_command(token.id, user, token.points, token.expires_at),
            exchange=topology.delayed_exchange, routing_key=expire_routing_key(), queue="expire",
        )

    expected = {
        timer(restored): "token already restored (expired, 10 points): no-op",
        timer(active): "token active, due in ",
        timer(overdue): "token expired: would restore 20 points",
        broker.park(redeemed(redeemed_token.id, user, 40)): "exchange request already exists: no-op",
        broker.park(redeemed(unrecorded.id, user, 6)): "would create exchange request",
        broker.park(redeemed(uuid.uuid4(), user, 5)):
            "token does not exist: would be refused again",
        broker.park(issued(active.id, user, 30)): "token still active: would schedule expiry",
        broker.park(issued(restored.id, user, 10)): "token no longer active: no-op",
        broker.park(b'{"type": "TokenIssued"}', reason="poison", message_id="poison-1"):
            "poison: would fail again (TokenIssued.token_id: Field required)",
        broker.park(issued(), exchange="gone-exchange"):
            "cannot replay: exchange 'gone-exchange' does not exist",
    }
    depth = broker.depth()

    result = cli("replay", "--all", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    said = {m["id"]: m["outcome"] for m in report["messages"]}
    # A script reading the summary must not take judged messages for replayed ones.
    assert (report["replayed"], report["judged"]) == (0, len(report["messages"]))
    for message_id, verdict in expected.items():
        assert said[message_id].startswith(verdict), (said[message_id], verdict)
    assert re.fullmatch(r"token active, due in 1(79|80) s: would be re-delayed",
                        said[list(expected)[1]])
    assert broker.depth() == depth
    assert services.balance(deps, user) == balance
    table = cli("replay", "--id", list(expected)[2], "--dry-run")
    assert "token expired: would restore 20 points" in table.stdout
    assert "nothing changed" in table.stdout


def test_without_the_database_a_replay_changes_nothing(cli, broker, topology):
    dead_letter_id = broker.park(issued())
    probe = broker.probe(topology.names.events_exchange, "TokenIssued")

    result = cli("replay", "--all", DATABASE_URL="postgresql://postgres@127.0.0.1:9/none")

    assert result.exit_code == 1
    assert "database unavailable" in result.output and "nothing was changed" in result.output
    assert broker.drain(probe) == []
    assert ids_in_parking(cli) == [dead_letter_id]


def test_an_unreachable_broker_is_reported_plainly(cli):
    result = cli("list", AMQP_URL="amqp://guest:guest@127.0.0.1:9/%2F")

    assert result.exit_code == 1
    assert "broker unreachable at amqp://127.0.0.1:9/%2F" in result.output


def test_a_timer_the_broker_dead_lettered_after_the_delay_chain_replays_to_the_expire_queue(
    cli, broker, topology
):
    # Given a timer that waited in the delay chain, then crashed its worker until the
    # expire queue's delivery limit parked it (x-death also lists the delay queue)
    command = expiry_command(uuid.uuid4(), "u-1", 5, datetime.now(UTC))
    broker.park_by_broker(command, exchange=topology.delay_exchange(DELAY_LEVELS - 1),
                          routing_key=delay_routing_key(100, "expire"), consumer="expire")
    (row,) = json.loads(cli("list", "--json").stdout)["messages"]
    assert row["reason"] == "delivery_limit"
    assert row["original_queue"] == topology.names.consumer_queue("expire")
    # The latest death, not x-first-death (which names the first delay queue)
    assert row["original_exchange"] == topology.delayed_exchange

    result = cli("replay", "--id", row["id"])

    assert result.exit_code == 0, result.output
    ((props, body),) = broker.drain(topology.names.consumer_queue("expire"))
    assert json.loads(body) == command
    assert "x-death" not in props.headers
    assert broker.depth() == 0


def test_replay_all_with_a_limit_takes_only_the_oldest(cli, broker):
    ids = [broker.park(issued()) for _ in range(3)]

    result = cli("replay", "--all", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert ids_in_parking(cli) == [ids[2]]
    assert cli("replay", "--id", ids[2], "--limit", "1").exit_code == 2
