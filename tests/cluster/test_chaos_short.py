"""The short form of ``make chaos``: every fault once, under a lighter load, on the
session's cluster. The full run (``make chaos``) is longer and heavier, not different."""

from __future__ import annotations

import pytest

from chaos import run
from chaos.report import render


@pytest.mark.timeout(480)
def test_every_fault_in_turn_loses_and_doubles_nothing(rabbit_cluster, tmp_path):
    report = run.run(run.SHORT, cluster=rabbit_cluster, work_dir=tmp_path)
    text = render(report)
    print(text)  # the figures, in the test's output
    assert report.final is not None
    assert report.final.refunds["lost"] == 0 and report.final.refunds["duplicated"] == 0, text
    assert report.final.exchange_requests["lost"] == 0, text
    assert report.final.exchange_requests["duplicated"] == 0, text
    assert report.issued > 0 and report.final.refunds["ok"] > 0, text
    assert report.ok, text
