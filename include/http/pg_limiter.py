"""A requests-per-second limit that holds across processes, tasks and machines: the state of each
limiter lives in one row of PostgreSQL (`claimsflow_meta.rate_limits`), and every decision is taken
under that row's lock, so two mapped tasks in the `npi_registry_api` pool share one budget of
2 requests/s instead of each spending 2. Same interface as `RateLimiter` (acquire/penalise), so
`HttpClient(limiter=...)` takes either.

`acquire()`, called right before each HTTP send, applies two rules:

1. **Slots** (`meta/rate_limit_reserve.sql`): reserve the next free slot — slots are `interval` =
   1.05/rate apart — and sleep until it. This spreads the requests evenly across workers.
2. **Window over real sends** (`meta/rate_limit_send.sql`, function `rate_limit_send`): a slot says
   when a request *may* leave, not when it does; a worker starved of CPU can send 170 ms after its
   slot, and the next worker's on-time request then lands too close to it (3 requests in 0.88 s under
   the real scheduler). So, right before the send, a second round trip records the actual send time
   in the row (`sent_at`, the last `keep` = floor(rate) sends) — only if the send `keep` back is at
   least `window` = keep × interval (1.05 s at 2/s) old; otherwise nothing is recorded and the caller
   sleeps until then and asks again. No window-long interval therefore ever holds more than `keep`
   recorded sends, late senders included, and because on-time slots already sit exactly `window`
   apart, the window costs nothing when nobody is late: the achieved rate stays 1/1.05 = 95 % of the
   limit. A late sender shifts the following sends back instead of squeezing them together.

Races: both steps are one statement each on an autocommit connection; the reservation is an
`INSERT … ON CONFLICT DO UPDATE` (row lock), the send check a plpgsql function that takes the row with
`SELECT … FOR UPDATE` and only then reads the clock, so concurrent callers are serialised and a
caller that waited for the lock always stamps a later time than the send it waited for. The lock is
held for the statement alone (about a millisecond), never across a sleep or a client round trip.

A process that dies (or hangs) between reserving and sending stalls nobody: its slot simply passes
unused, and since only real sends enter the window, no one waits for a send that never comes. Dying
between the send check and the send leaves one phantom send in the window: at most one window of one
budget slot lost. Dying inside a statement aborts it and PostgreSQL releases the lock; `lock_timeout`
turns a lock held by something else (a forgotten psql session) into an error instead of a hang.

Clock: every stored time and every comparison uses the database's `clock_timestamp()` — one clock for
all workers, also on other machines (the docker-compose workers), where local clocks differ (wall
clock) or are not comparable at all (monotonic clocks count from each machine's boot). The local
monotonic clock only measures durations: the sleep is counted from when the database answered (a slow
return of the answer is part of the wait, not added to it). The send is stamped in the database a
round trip before the request leaves the process; jitter in that short stretch is what the 5 %
margin absorbs (50 ms at 2/s). A backward step of the database host's clock only makes workers wait
longer; a forward step (NTP normally slews instead) could let one window pass early once.

A 429 pushes the shared next slot past the server's Retry-After for every caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

from include.db.postgres import read_sql, run_sql_file

# Slots are spaced 5 % wider than 1/rate (and the send window is 5 % longer than keep/rate) so that
# the jitter between the recorded send time and the request reaching the server never squeezes
# rate+1 requests into one second.
SAFETY_MARGIN = 0.05
# Longer than any legitimate wait for the row lock (each holder keeps it for one short statement).
LOCK_TIMEOUT = "30s"


class PgRateLimiter:
    def __init__(self, connect: Callable[[], psycopg.Connection], name: str, rate: float, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be positive, got {rate}")
        self.name = name
        self.rate = float(rate)
        self.interval = (1.0 + SAFETY_MARGIN) / self.rate
        # At most `keep` real sends in any `window` seconds: `rate` sends per 1.05 s for integer rates.
        self.keep = max(1, int(self.rate))
        self.window = self.keep * self.interval
        self._connect = connect
        self._sleep = sleep
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            try:
                conn.autocommit = False
                # CREATE … IF NOT EXISTS races between workers starting together: serialise it.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('claimsflow_meta.rate_limits'))")
                run_sql_file(conn, "meta/rate_limits.sql")
                conn.commit()
                # One statement per decision, so the row lock never outlives it; a lost reservation or
                # send stamp (a crash) is harmless: no need to wait for the WAL flush.
                conn.autocommit = True
                conn.execute("SET synchronous_commit = off")
                conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _ask(self, sql_file: str, params: dict) -> tuple[float, float]:
        """(seconds the database answered, local monotonic time of the answer)."""
        with self._lock:
            conn = self._connection()
            seconds = conn.execute(read_sql(sql_file), {"name": self.name, **params}).fetchone()[0]
            return float(seconds), time.monotonic()

    def _wait(self, seconds: float, answered: float) -> None:
        remaining = seconds - (time.monotonic() - answered)
        if remaining > 0:
            self._sleep(remaining)

    def reserve(self) -> float:
        """Rule 1: reserve the next shared slot and wait for it; returns the seconds reserved ahead."""
        delay, answered = self._ask("meta/rate_limit_reserve.sql", {"interval_s": self.interval})
        self._wait(delay, answered)
        return delay

    def record_send(self) -> float:
        """Rule 2: wait until the send `keep` back is `window` old, then record this send (call it right
        before the request leaves); returns the seconds waited for the window."""
        waited = 0.0
        while True:
            delay, answered = self._ask("meta/rate_limit_send.sql", {"keep": self.keep, "window_s": self.window})
            if delay <= 0:
                return waited
            waited += delay
            self._wait(delay, answered)

    def acquire(self) -> float:
        """Reserve a slot, wait for it, then pass the send window; returns the seconds waited."""
        return self.reserve() + self.record_send()

    def penalise(self, seconds: float) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute(read_sql("meta/rate_limit_penalise.sql"), {"name": self.name, "seconds": float(seconds)})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
