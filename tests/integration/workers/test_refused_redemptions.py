"""A well-formed TokenRedeemed the database does not back creates no exchange request: it
is dead-lettered at once with reason ``refused`` and what is wrong, never retried."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import TokenRedeemed
from shared import services
from shared.messaging import names as h
from tests.integration.workers.conftest import wait_until
from tests.integration.workers.test_failures import (
    SHORT_RETRIES,
    dead_letters,
    publish,
    request_exists,
)
from tests.support.clock import FixedClock
from workers import metrics

pytestmark = pytest.mark.timeout(60)


def _event(token_id: uuid.UUID, user: str, points: int, merchant: str) -> TokenRedeemed:
    return TokenRedeemed(token_id=token_id, user_id=user, points=points, merchant_id=merchant,
                         redeemed_at=datetime.now(UTC))


def test_redemptions_the_database_does_not_show_are_refused(
    container, deps, topology, broker, start_worker, user, merchant
):
    services.credit(deps, user, 100)
    active = services.issue(deps, user, 10).token
    cancelled = services.issue(deps, user, 20).token
    services.cancel(deps, user, cancelled.id)
    old = dataclasses.replace(deps, clock=FixedClock(datetime.now(UTC) - timedelta(hours=1)))
    expired = services.issue(old, user, 5).token
    assert services.expire(deps, expired.id).restored is not None
    elsewhere = services.issue(deps, user, 30).token
    services.redeem(deps, elsewhere.code, "another-merchant")
    real = services.issue(deps, user, 7).token
    services.redeem(deps, real.code, merchant)
    forged = {
        "never existed": _event(uuid.uuid4(), user, 10, merchant),
        "still active": _event(active.id, user, 10, merchant),
        "cancelled": _event(cancelled.id, user, 20, merchant),
        "expired": _event(expired.id, user, 5, merchant),
        "another merchant's": _event(elsewhere.id, user, 30, merchant),
        "inflated points": _event(real.id, user, 70, merchant),
    }
    genuine = _event(real.id, user, 7, merchant)
    retries_before = metrics.RETRIES.labels("exchange-requests")._value.get()
    start_worker(roles=["exchange-requests"], retry_delays=SHORT_RETRIES)
    ids = {str(e.event_id): name for name, e in forged.items()}
    for e in [*forged.values(), genuine]:
        publish(broker, topology.names.events_exchange, "TokenRedeemed",
                e.model_dump_json().encode(), str(e.event_id))

    found: list = []
    wait_until(lambda: found.extend(dead_letters(
        broker, topology.names.dead_letter_queue, lambda p, b: p.message_id in ids
    )) or len(found) >= len(forged), timeout=20)

    # Each forged one was parked at once (no retry through the delay chain), saying why
    assert metrics.RETRIES.labels("exchange-requests")._value.get() == retries_before
    by_name = {ids[p.message_id]: p.headers for p, _ in found}
    assert set(by_name) == set(forged)
    assert {hd[h.H_REASON] for hd in by_name.values()} == {"refused"}
    assert {hd[h.H_ATTEMPTS] for hd in by_name.values()} == {1}
    assert "does not exist" in by_name["never existed"][h.H_EXCEPTION]
    assert "active, not redeemed" in by_name["still active"][h.H_EXCEPTION]
    assert "refunded (cancelled)" in by_name["cancelled"][h.H_EXCEPTION]
    assert "refunded (expired)" in by_name["expired"][h.H_EXCEPTION]
    assert "another merchant" in by_name["another merchant's"][h.H_EXCEPTION]
    assert "points differ" in by_name["inflated points"][h.H_EXCEPTION]
    assert all(hd[h.H_ORIGINAL_ROUTING_KEY] == "TokenRedeemed" for hd in by_name.values())
    # ... and only the genuine redemption became an exchange request
    wait_until(lambda: request_exists(container.engine, real.id), timeout=10)
    for token in (active, cancelled, expired, elsewhere):
        assert not request_exists(container.engine, token.id)
    [request] = services.list_exchange_requests(deps, user)
    assert (request.token_id, request.points, request.merchant_id) == (real.id, 7, merchant)
