"""The redeem abuse limit's allowance (shared/services/abuse.py), on real PostgreSQL:
units taken, kept by an unknown code, given back by anything else."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.errors import TokenAlreadyRedeemed, TokenNotFound, TooManyAttempts
from shared.services import abuse
from shared.services.deps import Deps
from shared.services.retention import prune


@pytest.fixture
def limited(fixed_deps: Deps) -> Deps:
    return Deps(session_factory=fixed_deps.session_factory, clock=fixed_deps.clock,
                redeem_failures_per_minute=3)


def test_an_unknown_code_keeps_its_unit_and_any_other_outcome_gives_it_back(limited, merchant):
    with pytest.raises(TokenNotFound), abuse.redeem_attempt(limited, merchant):
        raise TokenNotFound("no such token")
    assert abuse.failures(limited, merchant) == 1
    with abuse.redeem_attempt(limited, merchant):  # redeemed
        assert abuse.failures(limited, merchant) == 2  # in flight: counted meanwhile
    with pytest.raises(TokenAlreadyRedeemed), abuse.redeem_attempt(limited, merchant):
        raise TokenAlreadyRedeemed("already redeemed")
    with pytest.raises(RuntimeError), abuse.redeem_attempt(limited, merchant):
        raise RuntimeError("a bug, or the database went away")
    assert abuse.failures(limited, merchant) == 1


def test_the_unit_after_the_limit_is_refused_until_one_comes_back(limited, clock, merchant):
    windows = [abuse.take_attempt(limited, merchant) for _ in range(3)]
    with pytest.raises(TooManyAttempts) as refused:
        abuse.take_attempt(limited, merchant)
    assert refused.value.details["limit"] == 3
    assert refused.value.details["retry_after"] == 60  # the fixed clock sits on a minute
    clock.advance(45)
    with pytest.raises(TooManyAttempts) as refused:
        abuse.take_attempt(limited, merchant)
    assert refused.value.details["retry_after"] == 15
    abuse.give_back(limited, merchant, windows[0])
    abuse.take_attempt(limited, merchant)
    assert abuse.failures(limited, merchant) == 3


def test_a_unit_goes_back_to_its_own_minute_after_the_minute_turned(limited, clock, merchant):
    with pytest.raises(TokenNotFound), abuse.redeem_attempt(limited, merchant):
        raise TokenNotFound("no such token")
    with abuse.redeem_attempt(limited, merchant):
        clock.advance(60)  # the redeem outlived its minute
    assert abuse.failures(limited, merchant) == 0  # the new minute starts clean...
    clock.advance(-60)
    assert abuse.failures(limited, merchant) == 1  # ... and the old one kept its failure


def test_giving_back_never_goes_below_zero(limited, merchant):
    window = abuse.take_attempt(limited, merchant)
    abuse.give_back(limited, merchant, window)
    abuse.give_back(limited, merchant, window)
    assert abuse.failures(limited, merchant) == 0


def test_prune_drops_past_windows_and_keeps_the_current_one(limited, clock, merchant):
    abuse.take_attempt(limited, merchant)
    clock.advance(60)
    abuse.take_attempt(limited, merchant)
    pruned = prune(limited)
    assert pruned.redeem_windows >= 1
    with limited.engine.connect() as conn:
        windows = conn.execute(text(
            "SELECT window_start, failures FROM redeem_failures WHERE merchant_id = :m"),
            {"m": merchant}).all()
    assert [(w, f) for w, f in windows] == [(clock.current, 1)]
