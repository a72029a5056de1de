"""API request discipline of the map builders against the sandbox server, which enforces the limit the
way the real APIs do (429 beyond it): N NPIs through the NPI Registry API from 2 concurrent workers
sharing one PostgreSQL-held budget (PgRateLimiter), and M HCPCS codes through Clinical Tables in
batched OR queries. Prints request counts, 429s, the busiest one-second window and the achieved rate
against the limit (goal ≥ 90 %, never above it). No cache writes: lookups only.

Usage: python benchmarks/bench_maps_api.py [--npis 10000] [--codes 5000] [--rps 40] [--batch 100] [--quick]
(`--rps 2`, the real default, makes 10,000 NPIs take 83 minutes; the pacing is the same at any rate.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import psycopg  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _machine import db_conninfo, machine_line, table  # noqa: E402

from include.common.npi import is_valid_npi  # noqa: E402
from include.http.client import HttpClient, RetryPolicy  # noqa: E402
from include.http.pg_limiter import PgRateLimiter  # noqa: E402
from include.maps import hcpcs, npi_api  # noqa: E402
from include.sandbox.core import MEDICAID_PATH, SCALES, make_npi  # noqa: E402
from include.sandbox.generate import generate  # noqa: E402
from include.sandbox.server import SandboxServer  # noqa: E402


def busiest_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def run_workers(server: SandboxServer, rps: float, work: list, fn, workers: int = 2) -> float:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()

    def worker(part):
        limiter = PgRateLimiter(lambda: psycopg.connect(db_conninfo()), name, rps)
        client = HttpClient(server.url, limiter=limiter, retry=RetryPolicy(attempts=5, backoff=0.2))
        try:
            for item in part:
                fn(client, item)
        finally:
            limiter.close()

    threads = [threading.Thread(target=worker, args=(work[i::workers],)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def report(label: str, server: SandboxServer, path: str, rps: float, seconds: float, expected: int) -> tuple:
    log = [r for r in server.requests(path) if path != "/api/" or not r.path.startswith("/api/hcpcs")]
    stamps = [r.ts for r in log]
    achieved = (len(stamps) - 1) / (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0
    return (label, f"{len(log):,}", f"{expected:,}", sum(1 for r in log if r.status == 429), busiest_second(stamps),
            f"{rps:g}", f"{achieved:.2f}", f"{achieved / rps:.0%}", f"{seconds:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npis", type=int, default=10_000)
    parser.add_argument("--codes", type=int, default=5_000)
    parser.add_argument("--rps", type=float, default=40.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1,000 NPIs and 500 codes")
    args = parser.parse_args()
    if args.quick:
        args.npis, args.codes = 1_000, 500
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench_maps_") as tmp:
        n_providers = int(args.npis * 1.02) + 10
        scale = SCALES["tiny"].with_overrides({
            "spending_npis": str(n_providers), "spending_rows": str(max(4 * args.codes, 2 * n_providers)),
            "nppes_rows": str(n_providers + 10), "hcpcs_codes": str(args.codes), "weekly_files": "1"})
        t0 = time.monotonic()
        generate(Path(tmp), scale, only=["nucc", "nppes", "medicaid", "cpt"])
        print(f"sandbox: {n_providers:,} providers, {args.codes:,} codes, generated in {time.monotonic() - t0:.1f}s")
        npis = [n for n in (make_npi(i) for i in range(n_providers)) if is_valid_npi(n)][: args.npis]
        codes = sorted({c for c in pq.read_table(Path(tmp) / "site" / MEDICAID_PATH, columns=["HCPCS_CODE"])
                        .column(0).to_pylist() if c and hcpcs.is_valid_shape(c)})
        batches = [codes[i:i + args.batch] for i in range(0, len(codes), args.batch)]
        rows = []
        with SandboxServer(Path(tmp), rate_limit=args.rps, burst=max(1, int(args.rps))) as server:
            seconds = run_workers(server, args.rps, npis, lambda client, n: npi_api.lookup(client, n))
            rows.append(report(f"NPI Registry, {len(npis):,} NPIs", server, "/api/", args.rps, seconds, len(npis)))
            server.clear_requests()
            seconds = run_workers(server, args.rps, batches,
                                  lambda client, b: hcpcs.resolve_batch(client, b, api_run_id=None))
            rows.append(report(f"Clinical Tables, {len(codes):,} codes / {args.batch}", server,
                               "/api/hcpcs/v3/search", args.rps, seconds, len(batches)))
    print(table(rows, ("API", "requests", "expected", "429s", "max in 1 s", "limit/s", "achieved/s", "of limit",
                       "seconds")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
