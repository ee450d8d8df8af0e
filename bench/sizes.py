"""How big each benchmark runs: full sizes by default, tiny ones for ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    duration_s: float  # each HTTP and plain-SQL throughput figure
    warmup_s: float  # before each of them
    rounds: int  # the API's peak and its SQL baseline alternate, duration_s / rounds each
    http_connections: int
    refund_tokens: int  # expired tokens refunded by each side of the refund figure
    expiry_tokens: int  # tokens expiring in the lateness figure
    expiry_window_s: float  # ... issued over this window, and expiring over the same
    relay_rows: int
    publish_messages: int
    cost_small: int  # token (and ledger) rows in the small table
    cost_large: int  # ... and in the large one
    cost_samples: int  # issue and redeem calls timed at each size
    soak_s: float = 600.0  # the soak's sustained load (figure 6)


FULL = Sizes(duration_s=10, warmup_s=2, rounds=5, http_connections=16, refund_tokens=20_000, expiry_tokens=20_000,
             expiry_window_s=10, relay_rows=50_000, publish_messages=50_000,
             cost_small=10_000, cost_large=1_000_000, cost_samples=1_000)

QUICK = Sizes(duration_s=1.0, warmup_s=0.3, rounds=2, http_connections=8, refund_tokens=1_500,
              expiry_tokens=300, expiry_window_s=1, relay_rows=1_000, publish_messages=1_000,
              cost_small=1_000, cost_large=10_000, cost_samples=60, soak_s=5.0)


def sizes_for(quick: bool, tokens: int | None, duration: float | None) -> Sizes:
    s = QUICK if quick else FULL
    if tokens is not None:
        s = replace(s, expiry_tokens=tokens)
    if duration is not None:
        s = replace(s, duration_s=duration)
    return s
