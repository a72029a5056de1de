"""Fixed-width Medicare ingestion vs its baselines, on the same generated rows in one run:

- `load_fwf` end to end (FTS layout, vectorised reader, CSV, COPY, rejects, primary key + index, swap);
- raw `COPY` of the same rows already as CSV (the ceiling; goal: ingest ≥ 70 % of it);
- row-by-row INSERT (psycopg 3, one transaction) of a slice (goal: ingest ≥ 20× faster).

Peak RSS of the ingest is measured in a child process. Usage:
    python benchmarks/bench_medicare_ingest.py [--benes 200000] [--kind summary|medpar]
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
from _machine import db_conninfo, machine_line, table  # noqa: E402

from include.fts_parsers.fixed_width import FwfReader, batch_to_csv  # noqa: E402
from include.fts_parsers.fts import find_fts_files, parse_fts  # noqa: E402
from include.medicare import ingest  # noqa: E402
from include.sandbox.core import SCALES  # noqa: E402
from include.sandbox.generate import generate  # noqa: E402


def child_ingest(folder: str, kind: str) -> None:
    """Run in a child process: the ingest alone, printing its figures as JSON."""
    fts_file = next(f for f in find_fts_files(folder) if f.base.startswith(kind))
    with psycopg.connect(db_conninfo()) as conn:
        ingest.ensure_schema(conn)
        t0 = time.perf_counter()
        result = ingest.load_fwf(conn, fts_file, parse_fts(fts_file.fts), force=True)
        seconds = time.perf_counter() - t0
    print(json.dumps({"rows": result.rows, "rejected": result.rejected, "seconds": seconds,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benes", type=int, default=200_000)
    parser.add_argument("--kind", choices=["summary", "medpar"], default="summary")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_ingest(*args.child)
        return 0
    print(machine_line())
    kind = "mbsf_abcd_summary" if args.kind == "summary" else "medpar_all_file"
    with tempfile.TemporaryDirectory(prefix="bench_medicare_") as tmp:
        scale = SCALES["tiny"].with_overrides({"medicare_benes": str(args.benes), "medicare_fwf_years": "2015",
                                               "medicare_sas_years": ""})
        t0 = time.perf_counter()
        generate(Path(tmp), scale, only=["medicare"])
        folder = Path(tmp) / "restricted" / "medicare" / "2015"
        fts_file = next(f for f in find_fts_files(folder) if f.base.startswith(kind))
        layout = parse_fts(fts_file.fts)
        size = sum(p.stat().st_size for p in fts_file.data)
        print(f"{kind}: {size / 2**20:,.0f} MiB, record length {layout.record_length}, {len(layout.columns)} columns; "
              f"generated in {time.perf_counter() - t0:.0f}s")

        # the same rows as CSV, for the raw COPY baseline (made once, outside the timings)
        csv_path = Path(tmp) / "rows.csv"
        rows_total = 0
        with csv_path.open("wb") as out:
            for data in fts_file.data:
                for batch in FwfReader(data, layout.columns, layout.record_length):
                    out.write(batch_to_csv(batch.table))
                    rows_total += batch.table.num_rows
        names = [c.name.lower() for c in layout.columns]
        with psycopg.connect(db_conninfo()) as conn:
            ingest.ensure_schema(conn)
            conn.execute("DROP TABLE IF EXISTS bench_raw_copy, bench_row_insert")
            ddl = ", ".join(f'"{n}" text' for n in names)
            conn.execute(f"CREATE UNLOGGED TABLE bench_raw_copy ({ddl})")
            conn.execute(f"CREATE UNLOGGED TABLE bench_row_insert ({ddl})")
            conn.commit()
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY bench_raw_copy FROM STDIN (FORMAT csv)") as copy:  # noqa: F541
                with csv_path.open("rb") as f:
                    while block := f.read(1 << 22):
                        copy.write(block)
            conn.commit()
            copy_s = time.perf_counter() - t0

            slice_n = min(rows_total, 20_000)
            rows = []
            for batch in FwfReader(fts_file.data[0], layout.columns, layout.record_length):
                rows += [tuple(None if v is None else str(v) for v in r.values())
                         for r in batch.table.slice(0, slice_n - len(rows)).to_pylist()]
                if len(rows) >= slice_n:
                    break
            placeholders = ", ".join(["%s"] * len(names))
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                for r in rows:
                    cur.execute(f"INSERT INTO bench_row_insert VALUES ({placeholders})", r)  # noqa: S608
            conn.commit()
            insert_rate = len(rows) / (time.perf_counter() - t0)
            conn.execute("DROP TABLE bench_raw_copy, bench_row_insert")
            conn.commit()

        proc = subprocess.run([sys.executable, __file__, "--child", str(folder), kind], capture_output=True, text=True,
                              env=os.environ, check=True)
        ing = json.loads(proc.stdout.strip().splitlines()[-1])
    ingest_rate, copy_rate = ing["rows"] / ing["seconds"], rows_total / copy_s
    print(table([
        ("load_fwf (ingest end to end)", f"{ing['rows']:,}", f"{ing['seconds']:.1f}", f"{ingest_rate:,.0f}",
         f"{size / 2**20 / ing['seconds']:,.1f}", f"{ing['peak_rss_mib']:,.0f}"),
        ("raw COPY of the same rows as CSV", f"{rows_total:,}", f"{copy_s:.1f}", f"{copy_rate:,.0f}", "", ""),
        ("row-by-row INSERT (slice)", f"{slice_n:,}", f"{slice_n / insert_rate:.1f}", f"{insert_rate:,.0f}", "", ""),
    ], ("path", "rows", "seconds", "rows/s", "file MiB/s", "peak RSS MiB")))
    print(f"ingest / raw COPY: {ingest_rate / copy_rate:.2f} (goal >= 0.70); "
          f"ingest / row INSERT: {ingest_rate / insert_rate:.1f}x (goal >= 20x); rejects: {ing['rejected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
