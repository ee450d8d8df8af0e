"""Replayed events take the same idempotent path as the originals: replaying a refund twice
restores the points once. The consumer side is driven by the real expire service on exactly
what the replayed message carries, read from the queue the worker consumes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from schemas.events import TokenExpired, parse_event
from shared import services
from shared.messaging.names import H_ATTEMPTS, H_REPLAYED
from shared.persistence.tables import LedgerEntry
from shared.services.deps import Deps
from tests.integration.dlq.builders import expire_routing_key, expiry_command
from tests.support.clock import FixedClock


def consume_one_expiry(broker, topology, deps):
    """What the expire consumer does with one message: parse, expire, ack after commit."""
    method, props, body = broker.channel.basic_get(
        topology.names.consumer_queue("expire"), auto_ack=False
    )
    assert method is not None, "the replay did not reach the expire queue"
    event = parse_event(body)
    assert isinstance(event, TokenExpired)
    outcome = services.expire(deps, event.token_id)
    broker.channel.basic_ack(method.delivery_tag)
    return props, body, outcome


def refunds(deps, token_id):
    with deps.session_factory() as session:
        return session.execute(
            select(func.count()).where(LedgerEntry.token_id == token_id,
                                       LedgerEntry.kind == "refund")
        ).scalar_one()


def test_replaying_a_refund_twice_restores_once(cli, broker, topology, deps, user):
    # Given a token past its expiry whose timer was dead-lettered (say, the database was
    # down for all five attempts)
    services.credit(deps, user, 100)
    an_hour_ago = Deps(session_factory=deps.session_factory,
                       clock=FixedClock(datetime.now(UTC) - timedelta(hours=1)))
    token = services.issue(an_hour_ago, user, 40).token
    command = expiry_command(token.id, user, 40, token.expires_at)
    dead_letter_id = broker.park(command, exchange=topology.delayed_exchange,
                                 routing_key=expire_routing_key(), queue="expire",
                                 exception="OperationalError: could not connect to server")
    assert services.balance(deps, user) == 60

    # When ops replay it, and the consumer handles what arrives
    assert cli("replay", "--id", dead_letter_id).exit_code == 0
    props, body, outcome = consume_one_expiry(broker, topology, deps)

    # Then the points are back, once
    assert json.loads(body) == command
    assert props.headers[H_ATTEMPTS] == 0 and props.headers[H_REPLAYED] == 1
    assert outcome.restored is not None and outcome.restored.points == 40
    assert services.balance(deps, user) == 100

    # When the same timer is parked again (a duplicate that failed too) and replayed again
    broker.channel.basic_publish(topology.names.dead_letter_exchange, "", body, props)
    dry = cli("replay", "--id", dead_letter_id, "--dry-run")
    assert "token already restored (expired, 40 points): no-op" in dry.stdout
    assert cli("replay", "--id", dead_letter_id).exit_code == 0
    props, _, outcome = consume_one_expiry(broker, topology, deps)

    # Then nothing more happens: one refund, the same balance
    assert props.headers[H_REPLAYED] == 2
    assert outcome.restored is None and outcome.not_due_until is None
    assert services.balance(deps, user) == 100
    assert refunds(deps, token.id) == 1
    assert broker.depth() == 0


def test_a_replayed_timer_that_comes_early_is_delayed_again_not_applied(
    cli, broker, topology, deps, user
):
    services.credit(deps, user, 50)
    token = services.issue(deps, user, 50).token  # expires in 180 s
    dead_letter_id = broker.park(
        expiry_command(token.id, user, 50, token.expires_at),
        exchange=topology.delayed_exchange, routing_key=expire_routing_key(), queue="expire",
    )

    assert cli("replay", "--id", dead_letter_id).exit_code == 0
    _, _, outcome = consume_one_expiry(broker, topology, deps)

    assert outcome.restored is None
    assert outcome.not_due_until == token.expires_at  # the consumer re-delays it
    assert services.balance(deps, user) == 0
