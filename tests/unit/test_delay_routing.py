"""The binary delay chain's routing keys: level k holds a message 2^k units of 100 ms,
so the bits of the key must add up to the delay, rounded up (a timer is late, never early)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.messaging.topology import (
    DELAY_LEVELS,
    DELAY_UNIT_MS,
    delay_routing_key,
    delay_units,
)

# The longest delay the chain can hold: every level's bit set.
MAX_DELAY_MS = DELAY_UNIT_MS * ((1 << DELAY_LEVELS) - 1)


def waited_ms(key: str) -> int:
    """What the chain would hold a message with this key: sum of 2^k units per set bit."""
    bits = key.split(".")[:DELAY_LEVELS]
    return sum(DELAY_UNIT_MS << (DELAY_LEVELS - 1 - i) for i, b in enumerate(bits) if b == "1")


@pytest.mark.parametrize(
    ("ms", "units"),
    [(0, 0), (-50, 0), (1, 1), (99, 1), (100, 1), (101, 2), (180_000, 1800), (250.7, 3)],
)
def test_delay_units_round_up_to_the_next_100ms(ms, units):
    assert delay_units(ms) == units


def test_a_delay_beyond_the_chain_is_clamped_to_its_maximum():
    assert delay_units(MAX_DELAY_MS + 10_000) == (1 << DELAY_LEVELS) - 1
    assert waited_ms(delay_routing_key(10 * MAX_DELAY_MS, "expire")) == MAX_DELAY_MS


def test_the_chain_covers_the_longest_token_lifetime():
    assert MAX_DELAY_MS >= 86_400_000


@given(st.integers(min_value=1, max_value=MAX_DELAY_MS))
def test_the_bits_add_up_to_the_delay_rounded_up_never_early(ms):
    waited = waited_ms(delay_routing_key(ms, "expire"))
    assert ms <= waited < ms + DELAY_UNIT_MS


def test_the_key_has_one_bit_per_level_then_the_consumer():
    key = delay_routing_key(500, "schedule-expiry")
    parts = key.split(".")
    assert len(parts) == DELAY_LEVELS + 1
    assert parts[-1] == "schedule-expiry"
    assert all(p in ("0", "1") for p in parts[:-1])
    assert parts[:-1][-3:] == ["1", "0", "1"]  # 5 units = 0b101, lowest level last


def test_no_delay_skips_every_level():
    assert delay_routing_key(0, "expire") == "0." * DELAY_LEVELS + "expire"
