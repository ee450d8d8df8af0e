"""Work through a backlog in bounded batches: run a batch until one comes back short.

Each batch is its own short transaction (a refund sweep, a prune), so locks are held
briefly and other transactions interleave. A batch smaller than asked means nothing was
left when it ran; anything that arrived since is the next run's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sized
from typing import TypeVar

B = TypeVar("B")


def _size(batch: object) -> int:
    return batch if isinstance(batch, int) else len(batch) if isinstance(batch, Sized) else 0


def until_short(
    run: Callable[[], B],
    size: int,
    *,
    stop: threading.Event | None = None,
    max_batches: int | None = None,
) -> Iterator[B]:
    """Call ``run`` and yield its batch (items, or a count of rows) until a batch is
    smaller than ``size``, ``stop`` is set, or ``max_batches`` batches have run."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    done = 0
    while stop is None or not stop.is_set():
        batch = run()
        done += 1
        yield batch
        if _size(batch) < size or (max_batches is not None and done >= max_batches):
            return
