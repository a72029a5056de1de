"""NPPES bulk preload (include.maps.nppes_bulk.preload) vs a plain pyarrow projected read, same run.

Generates a sandbox NPPES bundle set (monthly with N rows x 330 columns, 4 weeklies), extracts it in
the download layout, then measures in separate child processes (so each peak RSS is its own):

  (a) preload() into a scratch database (created with the test profile's connection, dropped after),
      wanted = the spending NPIs (~N/5, as 1.8M of 9M), read from maps.npi_wanted as the DAG does;
  (b) pyarrow: open_csv with include_columns of the same columns over the same CSVs, every batch
      filtered against the same wanted set, nothing else (preload ends with the same columns of the
      same rows: it reads the main files in two steps, the NPI column of every row, then the
      projected columns of the wanted rows' lines only, and builds and writes the JSON besides).
      The filter is the one preload uses
      (nppes_bulk.NpiSet: sorted int64 + searchsorted), because pyarrow.compute.is_in hashes its
      value set again on every call (~0.4 s per block for 1.8M NPIs: ~17 min over the full file);
      --literal-is-in runs the baseline with pc.is_in anyway. Both per-block costs are printed.

Prints both times, the ratio (goal <= 1.3x), the peak RSS of each (goal <= 1.5 GB) and the CPU of the
PostgreSQL backends preload kept busy (sampled from /proc). No asserts.

Usage: python benchmarks/bench_nppes_bulk.py [--rows N | --quick] [--workdir DIR] [--sandbox DIR] [--keep]
                                            [--literal-is-in]
  --rows N      monthly rows (default 9_000_000, the real size); --quick = 500_000
  --spending N  wanted NPIs (default rows / 5)
  --sandbox     reuse the NPPES zips of a sandbox generated at that scale (seed 1) instead of generating
  --workdir     where the bundle is generated and extracted (reused when it matches; default
                $TMPDIR/claimsflow-bench-nppes-<rows>)
Needs the test profile environment: eval "$(.venv/bin/python scripts/localenv.py exports --profile test)".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from _machine import db_conninfo, machine_line, table  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------------- setup


def spending_npis(seed: int, spending: int) -> list[str]:
    from include.sandbox.core import make_npi
    from include.sandbox.providers import category_of

    return [make_npi(i, valid=category_of(seed, i, spending) != "invalid") for i in range(spending)]


def prepare(workdir: Path, rows: int, spending: int, sandbox: Path | None = None) -> tuple[Path, Path]:
    """Generate (unless already there for these sizes, or `sandbox` is an existing one) and extract;
    returns the nppes root and the file of wanted NPIs (the spending NPIs, seed 1)."""
    from include.download.archives import extract_zip
    from include.sandbox.core import SCALES
    from include.sandbox.generate import generate

    stamp = workdir / "bench.json"
    want = {"rows": rows, "spending": spending}
    site = sandbox or workdir / "sandbox"
    workdir.mkdir(parents=True, exist_ok=True)
    if sandbox is None and not (stamp.exists() and json.loads(stamp.read_text()) == want):
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        scale = SCALES["full"].with_overrides({"nppes_rows": str(rows), "spending_npis": str(spending),
                                               "weekly_files": "4"})
        t0 = time.perf_counter()
        generate(site, scale, only=["nppes"])
        print(f"generated {rows:,} NPPES rows in {time.perf_counter() - t0:,.0f} s", flush=True)
        stamp.write_text(json.dumps(want))
    nppes_root = workdir / "data" / "raw" / "nppes"
    t0 = time.perf_counter()
    for z in sorted((site / "site" / "nppes").glob("NPPES_Data_Dissemination_*_V2.zip")):
        kind = "weekly" if "_Weekly_" in z.name else "monthly"
        extract_zip(z, nppes_root / kind / z.name.removesuffix(".zip"))
    print(f"extracted in {time.perf_counter() - t0:,.0f} s (reused when unchanged)", flush=True)
    wanted = workdir / f"wanted-{spending}.txt"
    if not wanted.exists():
        wanted.write_text("\n".join(spending_npis(1, spending)) + "\n")
    return nppes_root, wanted


def bulk_csvs(nppes_root: Path) -> list[tuple[Path, list[str], str]]:
    """(csv, projected columns, role) of every CSV preload reads."""
    from include.maps import nppes_bulk as nb

    files = nb.find_bulk_files(nppes_root)
    out = []
    for b in files.bundles:
        out.append((b.main, nb._main_projection(b.main), "main"))
        for kind in nb.SIDE_KINDS:
            path = getattr(b, kind)
            if path is not None:
                out.append((path, list(nb._side_projection(path, kind).values()), kind))
    return out


# ---------------------------------------------------------------------------------------------- children


def child_preload(nppes_root: Path, dbname: str) -> dict:
    import psycopg

    from include.maps import nppes_bulk as nb

    with psycopg.connect(db_conninfo(dbname)) as conn:
        t0, c0 = time.perf_counter(), time.process_time()
        stats = nb.preload(conn, nb.find_bulk_files(nppes_root))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_mb = children.ru_maxrss / 1024
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "reader_rss_mb": children_mb, "reader": stats.reader,
            "cpu": cpu + children.ru_utime + children.ru_stime,
            "found": stats.wanted_found, "wanted": stats.wanted,
            "replaced_by_weekly": stats.replaced_by_weekly, "deactivated": stats.deactivated,
            "rows_read": sum(v for k, v in stats.rows_read.items() if k.startswith("npidata")),
            "parts": {k: round(getattr(stats, k), 1) for k in ("read_seconds", "build_seconds", "write_seconds",
                                                               "write_wait_seconds")}}


def child_pyarrow(nppes_root: Path, wanted_file: Path, literal_is_in: bool) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from include.maps import nppes_bulk as nb

    t0, c0 = time.perf_counter(), time.process_time()
    wanted = pa.array(wanted_file.read_text().split(), type=pa.string())
    if literal_is_in:
        def mask(column):
            return pc.is_in(column, value_set=wanted)
    else:
        mask = nb.NpiSet(wanted).mask
    kept = rows = 0
    for path, columns, role in bulk_csvs(nppes_root):
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=nb.BLOCK_SIZE),
                                convert_options=pacsv.ConvertOptions(include_columns=columns,
                                                                     column_types={c: pa.string() for c in columns}))
        npi = columns.index("NPI") if "NPI" in columns else 0
        for batch in reader:
            filtered = batch.filter(mask(batch.column(npi)))
            if role == "main":
                rows += batch.num_rows
                kept += filtered.num_rows
    return {"seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb(), "found": kept, "rows_read": rows,
            "cpu": time.process_time() - c0}


def is_in_cost(wanted_file: Path) -> tuple[float, float]:
    """Seconds per 4 MB block (~3,600 NPPES rows) to filter with pc.is_in vs nppes_bulk.NpiSet."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from include.maps import nppes_bulk as nb

    wanted = pa.array(wanted_file.read_text().split(), type=pa.string())
    block = wanted.slice(0, 3_600)
    t0 = time.perf_counter()
    for _ in range(3):
        pc.is_in(block, value_set=wanted)
    is_in = (time.perf_counter() - t0) / 3
    npis = nb.NpiSet(wanted)
    t0 = time.perf_counter()
    for _ in range(100):
        npis.mask(block)
    return is_in, (time.perf_counter() - t0) / 100


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def drop_database(dbname: str, patience: float = 120.0) -> None:
    """DROP the scratch database. An autovacuum worker busy in it (after millions of inserts) cannot be
    terminated by a non-superuser, so the drop is retried until it is done; then a warning, not an
    error (the figures are worth more than the cleanup)."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(db_conninfo(), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse) as exc:
            if time.monotonic() > deadline:
                print(f"warning: scratch database {dbname} not dropped ({exc}); drop it by hand", flush=True)
                return
            time.sleep(2)


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving `dbname` (their process titles name it), sampled
    every 0.2 s from /proc while the block runs: what preload costs on the server's side (a backend
    ending between two samples loses at most its last 0.2 s)."""

    def __init__(self, dbname: str) -> None:
        self.tag = f" {dbname} ".encode()
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                if self.tag not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            self.seen[pid] = (int(fields[11]) + int(fields[12])) / tick

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def __enter__(self) -> BackendCpu:
        self._sample()
        self.before = dict(self.seen)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()
        self.seconds = sum(v - self.before.get(pid, 0.0) for pid, v in self.seen.items())


# ---------------------------------------------------------------------------------------------- main


def report(base: dict, pre: dict, backend_cpu: float, size: int, wanted_file: Path, literal_is_in: bool,
           load_before: float, load_after: float) -> None:
    per_is_in, per_set = is_in_cost(wanted_file)
    print(table([
        (f"pyarrow projected read + {'pc.is_in' if literal_is_in else 'NpiSet filter'}", f"{base['rows_read']:,}", f"{base['found']:,}", f"{base['seconds']:.1f}",
         f"{base['cpu']:.1f}", f"{base['rows_read'] / base['seconds']:,.0f}", f"{base['rss_mb']:,.0f}"),
        ("nppes_bulk.preload -> cache", f"{pre['rows_read']:,}", f"{pre['found']:,}", f"{pre['seconds']:.1f}",
         f"{pre['cpu']:.1f}", f"{pre['rows_read'] / pre['seconds']:,.0f}", f"{pre['rss_mb']:,.0f}"),
    ], ("method", "main rows", "wanted rows", "seconds", "CPU s*", "rows/s", "peak RSS MB")))
    print("* CPU of the Python process(es): preload's includes its reader process, not the PostgreSQL backends "
          f"(those used {backend_cpu:.1f} CPU s more, sampled)")
    print(f"wanted {pre['wanted']:,} NPIs; replaced by weekly {pre['replaced_by_weekly']:,}; deactivated "
          f"{pre['deactivated']:,}; maps.npi_cache {size / 2**20:,.0f} MB")
    print(f"filter cost per 3,600-row block against {pre['wanted']:,} NPIs: pc.is_in {per_is_in * 1000:,.1f} ms "
          f"(its value set is hashed again on every call), NpiSet.mask {per_set * 1000:,.2f} ms")
    print("preload time: " + ", ".join(f"{k.removesuffix('_seconds')} {v} s" for k, v in pre["parts"].items())
          + " (write runs on its own thread, overlapping read/build)")
    total_rss = pre["rss_mb"] + pre["reader_rss_mb"]
    print(f"preload reader: {pre['reader']}; peak RSS of its reader process {pre['reader_rss_mb']:,.0f} MB")
    print(f"1-minute load average before the two runs {load_before:.2f}, after {load_after:.2f} (on a machine "
          "busy with other work both runs are slower, preload more: it needs both cores)")
    print(f"ratio preload/pyarrow: {pre['seconds'] / base['seconds']:.2f}x (goal <= 1.3x); peak RSS preload "
          f"{pre['rss_mb'] / 1024:.2f} GB, with its reader process {total_rss / 1024:.2f} GB (goal <= 1.5 GB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=9_000_000)
    ap.add_argument("--quick", action="store_true", help="500_000 rows")
    ap.add_argument("--spending", type=int)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--sandbox", type=Path, help="use the NPPES zips of an already generated sandbox (seed 1) "
                                                  "instead of generating; give --rows/--spending of its scale")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--literal-is-in", action="store_true",
                    help="baseline filters with pc.is_in(batch, value_set=wanted) (rebuilds its hash table per "
                         "block: minutes at full size) instead of the NpiSet lookup preload uses")
    ap.add_argument("--child", choices=("preload", "pyarrow"), help=argparse.SUPPRESS)
    ap.add_argument("--nppes-root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--wanted-file", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child == "preload":
        print(json.dumps(child_preload(a.nppes_root, a.db)))
        return 0
    if a.child == "pyarrow":
        print(json.dumps(child_pyarrow(a.nppes_root, a.wanted_file, a.literal_is_in)))
        return 0

    rows = 500_000 if a.quick else a.rows
    spending = a.spending or rows // 5
    workdir = a.workdir or Path(tempfile.gettempdir()) / f"claimsflow-bench-nppes-{rows}"
    print(machine_line(), flush=True)
    nppes_root, wanted_file = prepare(workdir, rows, spending, a.sandbox)
    csvs = bulk_csvs(nppes_root)
    main_bytes = sum(p.stat().st_size for p, _c, role in csvs if role == "main")
    print(f"{len(csvs)} CSVs, main files {main_bytes / 2**30:,.2f} GiB, {len(csvs[0][1])} of "
          f"{len(Path(csvs[0][0]).open().readline().split(','))} columns projected", flush=True)
    print(f"like for like: both read these {len(csvs)} CSVs (main + othername/pl/endpoint of every bundle) and "
          "end with the same projected columns of the same wanted rows (block size, wanted set and NpiSet "
          "filter alike), in this run, each in a child process of its own after the same page-cache warm-up. "
          "The baseline is pyarrow's plain streaming read (every projected column of every row converted); "
          "preload reads the main files in two steps (the NPI column of every row, then the projected "
          "columns of the wanted rows' lines; a reader process with 2 threads), then also builds the API "
          "JSON and writes it into PostgreSQL", flush=True)

    import psycopg
    from psycopg import sql

    from include.maps import cache

    dbname = f"claimsflow_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        with psycopg.connect(db_conninfo(dbname)) as conn:
            cache.ensure_schema(conn)
            from include.common.npi import is_valid_npi

            npis = wanted_file.read_text().split()
            cache.replace_wanted(conn, "npi", ((n, is_valid_npi(n)) for n in npis))
        # warm the page cache for both runs alike
        for path, _c, _r in csvs:
            with path.open("rb") as f:
                while f.read(16 << 20):
                    pass
        load_before = os.getloadavg()[0]
        base = run_child(["--child", "pyarrow", "--nppes-root", str(nppes_root), "--wanted-file",
                          str(wanted_file), *(["--literal-is-in"] if a.literal_is_in else [])])
        with BackendCpu(dbname) as backends:
            pre = run_child(["--child", "preload", "--nppes-root", str(nppes_root), "--db", dbname])
        load_after = os.getloadavg()[0]
        with psycopg.connect(db_conninfo(dbname)) as conn:
            size = conn.execute("SELECT pg_total_relation_size('maps.npi_cache')").fetchone()[0]
        report(base, pre, backends.seconds, size, wanted_file, a.literal_is_in, load_before, load_after)
    finally:
        if not a.keep:
            drop_database(dbname)
    return 0


if __name__ == "__main__":
    sys.exit(main())
