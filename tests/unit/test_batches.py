"""until_short: batches run until one comes back short, the stop is set, or the cap."""

from __future__ import annotations

import threading

import pytest

from shared.batches import until_short


def backlog(total: int, size: int):  # type: ignore[no-untyped-def]
    left = list(range(total))
    calls = []

    def run() -> list[int]:
        batch, left[:] = left[:size], left[size:]
        calls.append(len(batch))
        return batch

    return run, calls


@pytest.mark.parametrize(("total", "expected"), [
    (0, [0]), (3, [3]), (5, [5, 0]), (12, [5, 5, 2]), (15, [5, 5, 5, 0]),
])
def test_batches_run_until_one_is_short(total: int, expected: list[int]) -> None:
    run, calls = backlog(total, 5)
    assert [len(b) for b in until_short(run, 5)] == expected
    assert calls == expected


def test_a_count_of_rows_works_as_a_batch() -> None:
    counts = iter([10, 10, 4, 10])
    assert sum(until_short(lambda: next(counts), 10)) == 24


def test_the_cap_ends_a_backlog_that_never_runs_short() -> None:
    assert list(until_short(lambda: 7, 7, max_batches=3)) == [7, 7, 7]


def test_a_stop_ends_it_between_batches() -> None:
    stop = threading.Event()
    seen = []
    for batch in until_short(lambda: [1, 2], 2, stop=stop):
        seen.append(batch)
        if len(seen) == 2:
            stop.set()
    assert len(seen) == 2
    stop_before = threading.Event()
    stop_before.set()
    assert list(until_short(lambda: [1], 1, stop=stop_before)) == []


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(until_short(lambda: [], 0))
