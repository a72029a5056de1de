"""Fixed-width reader (include.fts_parsers.fixed_width) throughput and memory, no database.

Generates fixed-width files with numpy (each column drawn from a pool of valid values, the sandbox
layouts): a medpar-like file (~800-byte records, 300+ columns: dates, 12.2 amounts, many 1-byte flags)
and a dense mbsf_ab-like one (119 bytes, 51 columns). Each measurement runs in a fresh child process
so that its peak RSS (resource.getrusage) is its own: read only (typed Arrow batches), read + CSV
bytes for COPY (`batch_to_csv`), read -> COPY text (`FwfReader.copy_blocks`, what the Medicare loader
streams: no typed values on the way), and a plain block read of the file for reference.
Usage: python benchmarks/bench_fwf_read.py [records]   (default 500000)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
from _machine import machine_line, table  # noqa: E402

from include.fts_parsers.fixed_width import DEFAULT_BLOCK_SIZE, batch_to_csv, columns_from_widths, read_fwf  # noqa: E402
from include.sandbox.medicare_layouts import mbsf_ab_layout, medpar_layout  # noqa: E402

POOL = 1024
LAYOUTS = {"medpar": lambda: medpar_layout(2016), "mbsf_ab": mbsf_ab_layout}


def _pool(rng: np.random.Generator, type_: str, width: int, scale: int) -> np.ndarray:
    """POOL valid fixed-width values of one column as a (POOL, width) uint8 matrix (~20 % blank)."""
    values = []
    for _ in range(POOL):
        if rng.random() < 0.2:
            values.append(" " * width)
        elif type_ == "DATE":
            day = np.datetime64("2016-01-01") + int(rng.integers(0, 366))
            values.append(str(day).replace("-", ""))
        elif type_ == "NUM" and scale:
            top = 10 ** min(width - scale - 2, 6)
            values.append(f"{rng.random() * top:.{scale}f}".rjust(width))
        elif type_ == "NUM":
            values.append(str(int(rng.integers(0, 10 ** min(width, 9)))).rjust(width))
        else:
            n = int(rng.integers(1, width + 1))
            values.append("".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), n)).ljust(width))
    return np.frombuffer("".join(values).encode("ascii"), np.uint8).reshape(POOL, width)


def generate(path: Path, layout_name: str, records: int, seed: int = 7) -> tuple[list, int]:
    layout = LAYOUTS[layout_name]()
    cols = columns_from_widths([(f.short, f.type, f.width, f.scale) for f in layout])
    rl = sum(f.width for f in layout)
    rng = np.random.default_rng(seed)
    pools = [_pool(rng, c.type, c.width, c.scale) for c in cols]
    chunk = 20_000
    with path.open("wb") as f:
        for start in range(0, records, chunk):
            n = min(chunk, records - start)
            block = np.empty((n, rl + 1), np.uint8)
            block[:, rl] = 10
            for c, pool in zip(cols, pools, strict=True):
                block[:, c.offset:c.offset + c.width] = pool[rng.integers(0, POOL, n)]
            f.write(block.tobytes())
    return cols, rl


def child(mode: str, path: str, layout_name: str, block_size: int) -> None:
    layout = LAYOUTS[layout_name]()
    cols = columns_from_widths([(f.short, f.type, f.width, f.scale) for f in layout])
    rl = sum(f.width for f in layout)
    t0 = time.perf_counter()
    rows = csv_bytes = 0
    if mode == "raw":
        with open(path, "rb", buffering=0) as f:
            while block := f.read(block_size):
                rows += block.count(b"\n")
    elif mode == "copy":
        for block in read_fwf(path, cols, rl, block_size=block_size, non_ascii="reject").copy_blocks():
            rows += block.rows
            csv_bytes += len(block.data)
    else:
        reader = read_fwf(path, cols, rl, block_size=block_size)
        for batch in reader:
            rows += batch.table.num_rows
            if mode == "csv":
                csv_bytes += len(batch_to_csv(batch.table))
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "rss": rss, "csv_bytes": csv_bytes}))


def run_child(mode: str, path: Path, layout_name: str, block_size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), layout_name, str(block_size)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout_name, records in (("medpar", n), ("mbsf_ab", n)):
            path = Path(tmp) / f"{layout_name}.dat"
            t0 = time.perf_counter()
            cols, rl = generate(path, layout_name, records)
            gen_s = time.perf_counter() - t0
            size = path.stat().st_size
            print(f"generated {layout_name}: {records:,} records x {rl} B, {len(cols)} columns, "
                  f"{size / 2**20:,.0f} MiB in {gen_s:.1f}s")
            runs = [("raw block read", "raw", DEFAULT_BLOCK_SIZE), ("read -> Arrow", "read", DEFAULT_BLOCK_SIZE),
                    ("read -> Arrow -> CSV", "csv", DEFAULT_BLOCK_SIZE),
                    ("read -> COPY text", "copy", DEFAULT_BLOCK_SIZE),
                    ("read -> CSV, 16 MiB blocks", "csv", 16 * 2**20), ("read -> CSV, 64 MiB blocks", "csv", 64 * 2**20)]
            for label, mode, bs in runs:
                r = run_child(mode, path, layout_name, bs)
                results.append((layout_name, label, f"{r['rows']:,}", f"{r['seconds']:.2f}",
                                f"{r['rows'] / r['seconds']:,.0f}", f"{size / r['seconds'] / 2**20:,.0f}",
                                f"{r['rss'] / 2**20:,.0f}", f"{r['csv_bytes'] / 2**20:,.0f}" if r["csv_bytes"] else "-"))
            path.unlink()
        # peak RSS flat in file size: the same reader on 4x fewer records
        path = Path(tmp) / "medpar_small.dat"
        generate(path, "medpar", n // 4)
        r = run_child("csv", path, "medpar", DEFAULT_BLOCK_SIZE)
        results.append(("medpar", "read -> CSV, 1/4 of the records", f"{r['rows']:,}", f"{r['seconds']:.2f}",
                        f"{r['rows'] / r['seconds']:,.0f}", f"{path.stat().st_size / r['seconds'] / 2**20:,.0f}",
                        f"{r['rss'] / 2**20:,.0f}", f"{r['csv_bytes'] / 2**20:,.0f}"))
    print(machine_line())
    print(table(results, ("file", "path", "records", "seconds", "records/s", "file MB/s", "peak RSS MiB", "CSV MiB")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
