"""The shutdown budget's slices nest: each wait gives up before its caller's."""

from __future__ import annotations

from cli import worker_command
from shared import shutdown
from shared.messaging import publisher
from workers import consumer, worker


def test_each_slice_ends_before_the_one_around_it() -> None:
    assert 0 < shutdown.CONFIRM_SECONDS < shutdown.CONSUMER_GRACE_SECONDS
    assert shutdown.CONSUMER_GRACE_SECONDS < shutdown.WORKER_STOP_SECONDS
    assert shutdown.WORKER_STOP_SECONDS < shutdown.PROCESS_SECONDS
    assert shutdown.PROCESS_SECONDS < shutdown.SUPERVISOR_KILL_SECONDS


def test_the_processes_use_the_budget_and_no_number_of_their_own() -> None:
    assert publisher.STOPPING_CONFIRM_SECONDS == shutdown.CONFIRM_SECONDS
    assert consumer.STOP_GRACE_SECONDS == shutdown.CONSUMER_GRACE_SECONDS
    assert worker.STOP_TIMEOUT_SECONDS == shutdown.WORKER_STOP_SECONDS
    assert worker_command.STOP_TIMEOUT_SECONDS == shutdown.SUPERVISOR_KILL_SECONDS
