"""COPY streaming (include.db.postgres.copy_rows) vs batched INSERTs of the same rows, same run.

Prints rows/s and MB/s for both and their ratio; the baseline is psycopg's executemany INSERT, which
is what a loader without COPY would do. Rows look like a spending row (two NPIs, a code, a month,
three numbers). Usage: python benchmarks/bench_copy.py [rows]   (default 500000)
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import psycopg  # noqa: E402
from _machine import db_conninfo, machine_line, table  # noqa: E402

from include.db.postgres import copy_rows  # noqa: E402

COLUMNS = ["billing_npi", "servicing_npi", "hcpcs_code", "claim_month", "benes", "claims", "paid"]
DDL = """CREATE TEMP TABLE bench_{name} (billing_npi text, servicing_npi text, hcpcs_code text,
         claim_month date, benes int, claims int, paid double precision)"""


def rows(n: int):
    month = dt.date(2024, 1, 1)
    for i in range(n):
        yield (f"1{i % 900_000_000:09d}", f"1{(i * 7) % 900_000_000:09d}", f"{99200 + i % 50}", month, 11 + i % 40,
               20 + i % 90, (i % 10_000) * 1.25)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    conninfo = db_conninfo()
    results = []
    with psycopg.connect(conninfo) as conn:
        conn.execute(DDL.format(name="copy"))
        conn.execute(DDL.format(name="insert"))
        t0 = time.perf_counter()
        copy_rows(conn, "bench_copy", COLUMNS, rows(n))
        conn.commit()
        copy_s = time.perf_counter() - t0
        size = conn.execute("SELECT pg_total_relation_size('bench_copy')").fetchone()[0]

        insert_n = min(n, 100_000)  # INSERT is slow; time a slice and report its rate
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bench_insert VALUES (%s, %s, %s, %s, %s, %s, %s)", list(rows(insert_n))
            )
        conn.commit()
        insert_s = time.perf_counter() - t0
    copy_rate, insert_rate = n / copy_s, insert_n / insert_s
    results.append(("COPY (copy_rows)", f"{n:,}", f"{copy_s:.2f}", f"{copy_rate:,.0f}", f"{size / copy_s / 2**20:,.1f}"))
    results.append(("INSERT executemany", f"{insert_n:,}", f"{insert_s:.2f}", f"{insert_rate:,.0f}", "-"))
    print(machine_line())
    print(table(results, ("method", "rows", "seconds", "rows/s", "table MB/s")))
    print(f"ratio COPY/INSERT: {copy_rate / insert_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
