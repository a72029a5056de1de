"""SAS7BDAT ingestion end to end (`ingest.load_sas`: chunked read, Arrow, CSV, COPY, indexes, swap) vs
pyreadstat reading the same file alone, on a generated denominator file; goal ≥ 50 %. Peak RSS of the
ingest in a child process (flat in file size).

Usage: python benchmarks/bench_sas_ingest.py [--benes 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import psycopg  # noqa: E402
import pyreadstat  # noqa: E402
from _machine import db_conninfo, machine_line, table  # noqa: E402

from include.medicare import ingest  # noqa: E402
from include.sandbox.core import SCALES  # noqa: E402
from include.sandbox.generate import generate  # noqa: E402


def child(path: str, what: str) -> None:
    t0 = time.perf_counter()
    if what == "pyreadstat":
        rows = sum(len(df) for df, _ in pyreadstat.read_file_in_chunks(pyreadstat.read_sas7bdat, path,
                                                                       chunksize=100_000))
    else:
        with psycopg.connect(db_conninfo()) as conn:
            ingest.ensure_schema(conn)
            rows = ingest.load_sas(conn, Path(path), 2010, force=True).rows
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(path: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), what], capture_output=True, text=True,
                         env=os.environ, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benes", type=int, default=200_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench_sas_") as tmp:
        scale = SCALES["tiny"].with_overrides({"medicare_benes": str(args.benes), "medicare_sas_years": "2010",
                                               "medicare_fwf_years": ""})
        t0 = time.perf_counter()
        generate(Path(tmp), scale, only=["medicare"])
        path = Path(tmp) / "restricted" / "medicare" / "2010" / "denominator" / "denom_2010.sas7bdat"
        size = path.stat().st_size
        print(f"{path.name}: {size / 2**20:,.0f} MiB; generated in {time.perf_counter() - t0:.0f}s")
        alone = run_child(path, "pyreadstat")
        ing = run_child(path, "ingest")
    rows = []
    for label, r in (("pyreadstat read alone (chunks)", alone), ("load_sas end to end", ing)):
        rows.append((label, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
                     f"{r['peak_rss_mib']:,.0f}"))
    print(table(rows, ("path", "rows", "seconds", "rows/s", "peak RSS MiB")))
    print(f"ingest / pyreadstat alone: {alone['seconds'] / ing['seconds']:.2f} (goal >= 0.50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
