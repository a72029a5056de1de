"""A requests-per-second limit that holds across processes, tasks and machines: the next free request
slot of each limiter lives in PostgreSQL (`claimsflow_meta.rate_limits`).

`acquire()` reserves a slot in one short transaction — the row lock serialises concurrent callers, so
slots are handed out exactly `1/rate` (plus a small safety margin) apart — and then sleeps until the
slot outside the transaction. Two mapped tasks in the `npi_registry_api` pool therefore share one
budget of 2 requests/s instead of each spending 2. Same interface as `RateLimiter` (acquire/penalise),
so `HttpClient(limiter=...)` takes either.

A 429 pushes the shared next slot past the server's Retry-After for every caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

from include.db.postgres import read_sql, run_sql_file

# Slots are spaced 5 % wider than 1/rate so that scheduling jitter between a slot and the request
# leaving the machine never squeezes rate+1 requests into one second.
SAFETY_MARGIN = 0.05


class PgRateLimiter:
    def __init__(self, connect: Callable[[], psycopg.Connection], name: str, rate: float, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be positive, got {rate}")
        self.name = name
        self.rate = float(rate)
        self.interval = (1.0 + SAFETY_MARGIN) / self.rate
        self._connect = connect
        self._sleep = sleep
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            # CREATE … IF NOT EXISTS races between workers starting together: serialise it.
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('claimsflow_meta.rate_limits'))")
            run_sql_file(self._conn, "meta/rate_limits.sql")
            self._conn.commit()
        return self._conn

    def acquire(self) -> float:
        """Reserve the next shared slot and wait for it; returns the seconds waited."""
        with self._lock:
            conn = self._connection()
            try:
                # A reservation lost in a crash is harmless: no need to wait for the WAL flush.
                conn.execute("SET LOCAL synchronous_commit = off")
                delay = conn.execute(read_sql("meta/rate_limit_acquire.sql"),
                                     {"name": self.name, "interval_s": self.interval}).fetchone()[0]
                received = time.monotonic()
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        # The delay counts from when the database answered: the commit's own time is part of the wait,
        # not added to it (a slow commit would otherwise send the request late, and squeeze it
        # together with the next ones into one second).
        delay = float(delay)
        remaining = delay - (time.monotonic() - received)
        if remaining > 0:
            self._sleep(remaining)
        return delay

    def penalise(self, seconds: float) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute(read_sql("meta/rate_limit_penalise.sql"), {"name": self.name, "seconds": float(seconds)})
            conn.commit()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
