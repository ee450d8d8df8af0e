"""The redeem abuse limit (shared/services/abuse.py) on real PostgreSQL: unknown codes
counted per merchant and minute, never more than the limit."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.errors import TooManyAttempts
from shared.services import abuse
from shared.services.deps import Deps
from shared.services.retention import prune


@pytest.fixture
def limited(fixed_deps: Deps) -> Deps:
    return Deps(session_factory=fixed_deps.session_factory, clock=fixed_deps.clock,
                redeem_failures_per_minute=3)


def test_failures_count_up_to_the_limit_and_the_next_is_refused(limited, clock, merchant):
    assert [abuse.record_redeem_failure(limited, merchant) for _ in range(3)] == [1, 2, 3]
    clock.advance(45)
    with pytest.raises(TooManyAttempts) as refused:
        abuse.record_redeem_failure(limited, merchant)
    assert refused.value.details == {"limit": 3, "retry_after": 15}
    with pytest.raises(TooManyAttempts):
        abuse.check_redeem_allowed(limited, merchant)
    with limited.engine.connect() as conn:
        assert abuse.failures(conn, limited, merchant) == 3  # the refused one not counted


def test_the_check_changes_nothing_and_lets_a_merchant_under_the_limit_through(limited,
                                                                               merchant):
    abuse.record_redeem_failure(limited, merchant)
    for _ in range(5):
        abuse.check_redeem_allowed(limited, merchant)
    with limited.engine.connect() as conn:
        assert abuse.failures(conn, limited, merchant) == 1


def test_a_new_minute_starts_clean(limited, clock, merchant):
    for _ in range(3):
        abuse.record_redeem_failure(limited, merchant)
    clock.advance(60)
    abuse.check_redeem_allowed(limited, merchant)
    assert abuse.record_redeem_failure(limited, merchant) == 1


def test_prune_drops_past_windows_and_keeps_the_current_one(limited, clock, merchant):
    abuse.record_redeem_failure(limited, merchant)
    clock.advance(60)
    abuse.record_redeem_failure(limited, merchant)
    assert prune(limited).redeem_windows >= 1
    with limited.engine.connect() as conn:
        windows = conn.execute(text(
            "SELECT window_start, failures FROM redeem_failures WHERE merchant_id = :m"),
            {"m": merchant}).all()
    assert [(w, f) for w, f in windows] == [(clock.current, 1)]
