"""The progress helper: reports every `interval` seconds with done/total, rate and ETA."""

from __future__ import annotations

import logging

from include.common.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reports_only_after_the_interval_with_rate_and_eta(caplog):
    clock = FakeClock()
    progress = Progress("rows of npidata", total=1000, unit="rows", interval=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="claimsflow.progress"):
        clock.now += 5
        progress.advance(100)
        assert caplog.records == []  # 5 s < interval
        clock.now += 5
        progress.advance(100)  # 200 rows in 10 s
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert line == "rows of npidata: 200 rows / 1,000 rows (20.0%), 20 rows/s, ETA 40s"


def test_bytes_are_human_readable_and_resumed_work_is_not_in_the_rate():
    clock = FakeClock()
    progress = Progress("download", total=100 * 2**20, unit="B", clock=clock, start=50 * 2**20)
    clock.now += 10
    progress.advance(10 * 2**20)  # 10 MB in 10 s, after 50 MB fetched by an earlier run
    assert progress.rate == 2**20
    assert progress.status() == "download: 60.0 MB / 100.0 MB (60.0%), 1.0 MB/s, ETA 40s"


def test_unknown_total_and_finish_line(caplog):
    clock = FakeClock()
    progress = Progress("records", unit="records", clock=clock)
    clock.now += 125
    progress.advance(250)
    assert progress.eta() is None
    assert progress.status() == "records: 250 records, 2 records/s"
    with caplog.at_level(logging.INFO, logger="claimsflow.progress"):
        line = progress.finish()
    assert line == "records: done, 250 records in 2m05s (2 records/s)"
    assert caplog.records[-1].getMessage() == line
