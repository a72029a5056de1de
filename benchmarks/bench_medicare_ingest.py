"""Fixed-width Medicare ingestion vs its baselines, on the same generated rows in one run:

- `load_fwf` end to end (fingerprint, manifest, FTS layout, vectorised reader, COPY text, rejects,
  primary key + bene_id index + ANALYZE, swap), in a child process (its peak RSS is its own);
- raw COPY, like for like (goal: ingest >= 70 % of it): the ingest's own COPY text for the same rows,
  made before the timing, copied into a table of the same definition (typed columns, generated uniform
  columns, logged), then the same primary key, index and ANALYZE. This is the database's share of the
  ingest: what `load_fwf` would take if reading, checking and formatting the file cost nothing;
- raw COPY into an UNLOGGED all-text table without indexes of the data columns as quoted CSV (the
  baseline of the earlier figures, unchanged): a ceiling the ingest cannot reach, since it skips work
  the target table needs (WAL, type input, generated columns, source_file/record_number, indexes);
- row-by-row INSERT (psycopg 3, one transaction) of a slice (goal: ingest >= 20x faster).

Each timing but the INSERT is the best of `--repeat` rounds; a round runs the three side by side, so a
busy machine hits them alike. The ingest loads `medicare_raw.bench_<kind>_2015` (file names prefixed
`bench_`), so a benchmark never replaces the database's own tables (nor trips on views built on them).
Usage:
    python benchmarks/bench_medicare_ingest.py [--benes 200000] [--kind summary|medpar] [--repeat 3]
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
from _machine import db_conninfo, machine_line, plain_copy_seconds, table  # noqa: E402
from psycopg import sql  # noqa: E402

from include.fts_parsers.fixed_width import FwfReader, batch_to_csv  # noqa: E402
from include.fts_parsers.fts import find_fts_files, parse_fts  # noqa: E402
from include.medicare import ingest  # noqa: E402
from include.medicare.uniform import match_uniform  # noqa: E402
from include.sandbox.core import SCALES  # noqa: E402
from include.sandbox.generate import generate  # noqa: E402

KINDS = {"summary": "mbsf_abcd_summary", "medpar": "medpar_all_file"}


def child_ingest(folder: str) -> None:
    """Run in a child process: the ingest alone, printing its figures as JSON."""
    (fts_file,) = find_fts_files(folder)
    index_s = 0.0
    index_after_load = ingest._index_after_load

    def timed_index(*args):  # to show the index share of the ingest next to the baseline's
        nonlocal index_s
        t = time.perf_counter()
        index_after_load(*args)
        index_s += time.perf_counter() - t

    ingest._index_after_load = timed_index
    with psycopg.connect(db_conninfo()) as conn:
        ingest.ensure_schema(conn)
        t0 = time.perf_counter()
        result = ingest.load_fwf(conn, fts_file, parse_fts(fts_file.fts), force=True)
        seconds = time.perf_counter() - t0
    print(json.dumps({"rows": result.rows, "rejected": result.rejected, "seconds": seconds, "index_s": index_s,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bench_folder(src: Path, kind: str, dest: Path) -> Path:
    """`bench_<kind>_2015.fts` and its parts as links to the generated files: the ingest's table is then
    `bench_<kind>_2015`, not the real `<kind>_2015`."""
    fts_file = next(f for f in find_fts_files(src) if f.base.startswith(kind))
    folder = dest / "2015"
    folder.mkdir(parents=True)
    base = f"bench_{kind}_2015"
    (folder / f"{base}.fts").symlink_to(fts_file.fts)
    for i, part in enumerate(fts_file.data, 1):
        (folder / (f"{base}_{i:03d}.dat" if len(fts_file.data) > 1 else f"{base}.dat")).symlink_to(part)
    return folder


def like_for_like(conn: psycopg.Connection, fts_file, layout, texts: list[list]) -> tuple[float, float]:
    """The ingest's database work alone: same DDL, the pre-made COPY text of each part with its
    source_file default, the same indexes and ANALYZE, one transaction. (copy seconds, index seconds)."""
    columns = ingest._sql_columns(layout)
    uniform = match_uniform([name for name, _ in columns], source=str(fts_file.fts))
    target = sql.Identifier(ingest.SCHEMA, "bench_like_for_like")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
    conn.commit()
    t0 = time.perf_counter()
    conn.execute(ingest.table_ddl(ingest.SCHEMA, "bench_like_for_like", columns, uniform, file_year=2015))
    for data, chunks in zip(fts_file.data, texts, strict=True):
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN source_file SET DEFAULT {}").format(target,
                                                                                          sql.Literal(data.name)))
        ingest.copy_text(conn, (ingest.SCHEMA, "bench_like_for_like"), ["record_number", *[n for n, _ in columns]],
                         chunks, fmt="text", delimiter="\t", null="")
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN source_file DROP DEFAULT").format(target))
    t1 = time.perf_counter()
    ingest._index_after_load(conn, "bench_like_for_like", "bench_like_for_like", 0)
    conn.commit()
    t2 = time.perf_counter()
    conn.execute(sql.SQL("DROP TABLE {}").format(target))
    conn.commit()
    return t1 - t0, t2 - t1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benes", type=int, default=200_000)
    parser.add_argument("--kind", choices=sorted(KINDS), default="summary")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing (the best is shown)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_ingest(args.child)
        return 0
    print(machine_line())
    kind = KINDS[args.kind]
    repeat = max(args.repeat, 1)
    with tempfile.TemporaryDirectory(prefix="bench_medicare_") as tmp:
        scale = SCALES["tiny"].with_overrides({"medicare_benes": str(args.benes), "medicare_fwf_years": "2015",
                                               "medicare_sas_years": ""})
        t0 = time.perf_counter()
        generate(Path(tmp), scale, only=["medicare"])
        folder = bench_folder(Path(tmp) / "restricted" / "medicare" / "2015", kind, Path(tmp) / "bench")
        (fts_file,) = find_fts_files(folder)
        layout = parse_fts(fts_file.fts)
        size = sum(p.stat().st_size for p in fts_file.data)
        print(f"{kind}: {size / 2**20:,.0f} MiB in {len(fts_file.data)} file(s), record length {layout.record_length}, "
              f"{len(layout.columns)} columns; generated in {time.perf_counter() - t0:.0f}s")

        # the inputs of the baselines, made once, outside the timings
        csv_path = Path(tmp) / "rows.csv"
        rows_total = 0
        with csv_path.open("wb") as out:
            for data in fts_file.data:
                for batch in FwfReader(data, layout.columns, layout.record_length):
                    out.write(batch_to_csv(batch.table))
                    rows_total += batch.table.num_rows
        texts = [[bytes(b.data) for b in FwfReader(data, layout.columns, layout.record_length,
                                                   non_ascii="reject").copy_blocks()] for data in fts_file.data]
        text_mib = sum(len(c) for t in texts for c in t) / 2**20
        names = [c.name.lower() for c in layout.columns]
        ddl = ", ".join(f'"{n}" text' for n in names)
        copy_runs, like_runs, runs = [], [], []
        for _ in range(repeat):  # the three timings side by side, so a busy moment hits them alike
            with psycopg.connect(db_conninfo()) as conn:
                ingest.ensure_schema(conn)
                copy_runs.append(plain_copy_seconds(conn, "bench_raw_copy", ddl, csv_path)[0])
                like_runs.append(like_for_like(conn, fts_file, layout, texts))
            proc = subprocess.run([sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True,
                                  env=os.environ, check=True)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        copy_s = min(copy_runs)
        like_copy_s, like_index_s = min(like_runs, key=sum)
        ing = min(runs, key=lambda r: r["seconds"])

        with psycopg.connect(db_conninfo()) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_row_insert")
            conn.execute(f"CREATE UNLOGGED TABLE bench_row_insert ({ddl})")
            conn.commit()
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
            conn.execute("DROP TABLE bench_row_insert")
            # the benchmark's table and rejects go
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(ingest.SCHEMA, fts_file.table)))
            conn.execute("DELETE FROM medicare_raw.ingest_rejects WHERE table_name = %s", (fts_file.table,))
            conn.commit()
    like_s = like_copy_s + like_index_s
    ingest_rate, copy_rate, like_rate = ing["rows"] / ing["seconds"], rows_total / copy_s, rows_total / like_s
    print(table([
        ("load_fwf (ingest end to end)", f"{ing['rows']:,}", f"{ing['seconds']:.2f}",
         f"{ing['seconds'] - ing['index_s']:.2f} + {ing['index_s']:.2f}", f"{ingest_rate:,.0f}",
         f"{size / 2**20 / ing['seconds']:,.1f}", f"{max(r['peak_rss_mib'] for r in runs):,.0f}"),
        ("raw COPY, like for like (same table + indexes)", f"{rows_total:,}", f"{like_s:.2f}",
         f"{like_copy_s:.2f} + {like_index_s:.2f}", f"{like_rate:,.0f}", "", ""),
        ("raw COPY, unlogged text table, no indexes", f"{rows_total:,}", f"{copy_s:.2f}", "", f"{copy_rate:,.0f}", "", ""),
        ("row-by-row INSERT (slice)", f"{slice_n:,}", f"{slice_n / insert_rate:.1f}", "", f"{insert_rate:,.0f}", "", ""),
    ], ("path", "rows", "seconds", "load + indexes", "rows/s", "file MiB/s", "peak RSS MiB")))
    tries = "; ".join(f"{c:.2f} / {sum(lk):.2f} / {r['seconds']:.2f}" for c, lk, r in zip(copy_runs, like_runs, runs,
                                                                                          strict=True))
    print(f"COPY text the ingest streams: {text_mib:,.0f} MiB. Runs (raw COPY / like for like / ingest, s): {tries}; "
          f"the best of each is shown")
    print(f"ingest / raw COPY like for like: {ingest_rate / like_rate:.2f} (goal >= 0.70); "
          f"ingest / row INSERT: {ingest_rate / insert_rate:.1f}x (goal >= 20x); rejects: {ing['rejected']}")
    print(f"ingest / raw COPY into an unlogged text table without indexes (the earlier baseline): "
          f"{ingest_rate / copy_rate:.2f}; that COPY skips WAL, type input, the generated columns, "
          f"source_file/record_number and the indexes, which the ingest's table needs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
