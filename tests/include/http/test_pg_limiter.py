"""The PostgreSQL-backed rate limit holds across independent limiters (= tasks on other workers)."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from include.http.pg_limiter import PgRateLimiter


def _max_in_window(stamps: list[float], window: float = 1.0) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_two_workers_share_one_budget(db_conninfo):
    name = f"test-{uuid.uuid4().hex[:8]}"
    rate, per_worker = 5.0, 8
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        limiter = PgRateLimiter(lambda: psycopg.connect(db_conninfo), name, rate)
        try:
            for _ in range(per_worker):
                limiter.acquire()
                with lock:
                    stamps.append(time.monotonic())
        finally:
            limiter.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert len(stamps) == 2 * per_worker
    assert _max_in_window(stamps) <= rate, "never more than `rate` slots in any one-second window, across workers"
    achieved = (len(stamps) - 1) / (max(stamps) - min(stamps))
    assert achieved >= 0.9 * rate, f"achieved {achieved:.2f}/s of {rate}/s in {elapsed:.1f}s"


def test_penalise_pushes_every_worker(db_conninfo):
    name = f"test-{uuid.uuid4().hex[:8]}"
    a = PgRateLimiter(lambda: psycopg.connect(db_conninfo), name, 50.0)
    b = PgRateLimiter(lambda: psycopg.connect(db_conninfo), name, 50.0)
    try:
        a.acquire()
        a.penalise(0.6)
        started = time.monotonic()
        waited = b.acquire()
        assert waited >= 0.5 and time.monotonic() - started >= 0.5
    finally:
        a.close()
        b.close()


def test_the_commit_time_is_part_of_the_wait_not_added_to_it(db_conninfo):
    """A slow commit (a WAL flush under load) must not send the request late: the limiter sleeps the
    reserved delay minus the time since the database answered."""

    class SlowCommit:
        def __init__(self, conn):
            self._conn = conn

        def __getattr__(self, name):
            return getattr(self._conn, name)

        def commit(self):
            time.sleep(0.2)
            self._conn.commit()

    slept: list[float] = []
    name = f"test-{uuid.uuid4().hex[:8]}"
    limiter = PgRateLimiter(lambda: SlowCommit(psycopg.connect(db_conninfo)), name, 1.0, sleep=slept.append)
    try:
        limiter.acquire()  # the first slot is free now
        delay = limiter.acquire()  # the second is 1.05 s after the first (minus the first commit's 0.2 s)
    finally:
        limiter.close()
    assert 0.6 < delay < 1.1
    assert slept and delay - 0.3 < slept[-1] <= delay - 0.19, "the 0.2 s commit was taken out of the wait"
