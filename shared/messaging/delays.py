"""Where to publish a delayed message so it takes the fewest hops.

Every delay level's exchange routes on the whole binary routing key
(``topology.delay_routing_key``), so a message may enter the chain at the level of its
highest set bit instead of the top: the levels above would only pass it on (a bit of 0).
Each skipped level is one topic-exchange routing step less inside the broker, which was
its bottleneck when thousands of timers a second entered at level 19 (a 3-minute timer
skips 8 of 20 levels; a 1-second retry 15).
"""

from __future__ import annotations

from shared.messaging.topology import (
    EXPIRE_CONSUMER,
    LIFETIME_SLACK_UNITS,
    Topology,
    delay_routing_key,
    delay_units,
)


def delay_target(topo: Topology, delay_ms: float, consumer: str) -> tuple[str, str]:
    """(exchange, routing key) of a message due at ``consumer`` after ``delay_ms``."""
    units = delay_units(delay_ms)
    exchange = topo.delay_exchange(units.bit_length() - 1) if units else topo.delayed_exchange
    return exchange, delay_routing_key(delay_ms, consumer)


def expiry_target(topo: Topology, delay_ms: float) -> tuple[str, str]:
    """Where a token's timer goes: the lifetime queue when it is due about one lifetime
    from now (the common case: scheduled just after the issue), in one hop, through the
    default exchange; otherwise the binary chain (a token of an earlier lifetime, a timer
    scheduled late after an outage)."""
    units = delay_units(delay_ms)
    if topo.lifetime_units - LIFETIME_SLACK_UNITS <= units <= topo.lifetime_units:
        return "", topo.lifetime_queue
    return delay_target(topo, delay_ms, EXPIRE_CONSUMER)
