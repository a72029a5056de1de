"""Progress reporting for long loops: done/total, rate and ETA, logged at most every ~10 seconds.

    progress = Progress("rows of npidata_pfile.csv", total=9_000_000, unit="rows")
    for batch in batches:
        ...
        progress.advance(len(batch))
    progress.finish()

The same helper serves downloads (unit="B", rendered as MB/s) and row loops. It logs through the
standard `logging` module, so inside an Airflow task the lines land in the task log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("claimsflow.progress")

_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB")


def _human(amount: float, unit: str) -> str:
    if unit == "B":
        value = float(amount)
        for name in _BYTE_UNITS:
            if abs(value) < 1024 or name == _BYTE_UNITS[-1]:
                return f"{value:,.1f} {name}" if name != "B" else f"{int(value):,} B"
            value /= 1024
    return f"{int(amount):,} {unit}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Counts work done and logs a status line when `interval` seconds have passed since the last one."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "rows",
        interval: float = 10.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: int = 0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.interval = interval
        self.logger = logger or log
        self.clock = clock
        self.done = start
        self._start_count = start  # work done before this run (a resumed download) is not in the rate
        self._started = clock()
        self._last_report = self._started

    @property
    def elapsed(self) -> float:
        return self.clock() - self._started

    @property
    def rate(self) -> float:
        """Units per second over this run."""
        elapsed = self.elapsed
        return (self.done - self._start_count) / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds until `total` at the current rate, or None when it cannot be known."""
        if self.total is None or self.rate <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate

    def status(self) -> str:
        rate = f"{_human(self.rate, self.unit)}/s"
        if self.total:
            pct = 100.0 * self.done / self.total
            eta = self.eta()
            eta_text = _duration(eta) if eta is not None else "?"
            return (
                f"{self.label}: {_human(self.done, self.unit)} / {_human(self.total, self.unit)} "
                f"({pct:.1f}%), {rate}, ETA {eta_text}"
            )
        return f"{self.label}: {_human(self.done, self.unit)}, {rate}"

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        now = self.clock()
        if now - self._last_report >= self.interval:
            self._last_report = now
            self.logger.info(self.status())

    def finish(self) -> str:
        """Logs and returns the closing line: total done, elapsed time, average rate."""
        line = (
            f"{self.label}: done, {_human(self.done, self.unit)} in {_duration(self.elapsed)} "
            f"({_human(self.rate, self.unit)}/s)"
        )
        self.logger.info(line)
        return line
