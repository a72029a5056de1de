"""DocGraph Hop Teaming yearly zips (`restricted/hop_teaming/DocGraph_Hop_Teaming_<YYYY>.zip`), as a user
places the licensed copies by hand.

Each zip holds one folder (`DocGraph_Hop_Teaming_<YYYY>`, with an edition suffix in some years such as
`_CC`, `_Commercial` or `_NonCommercial`) with the CSV `DocGraph_Hop_Teaming_<YYYY>.csv` and a
`DocGraph Readme.pdf`, plus the macOS `__MACOSX/` clutter (AppleDouble `._*` files). The CSV has the
header `from_npi,to_npi,patient_count,transaction_count,average_day_wait,std_day_wait`, LF line
endings and `scale.hop_edges` data rows, streamed into the zip member in vectorised batches (flat
memory at any size).

Edges are directed and unique per year without keeping a set of them: the g-th "from" provider of a
year (a permutation of the providers in the monthly NPPES file) gets a skewed out-degree and distinct
"to" providers at a fixed stride, never itself, so any row's edge is computable and uniqueness holds by
construction. About 5% of the rows are then turned into the reverse B->A of a nearby A->B (only where
the layout does not already hold B->A), as referral pairs often go both ways. Clean rows have
`patient_count >= 11`, `transaction_count >= patient_count`, waits `>= 0` written with a `.`, and both
NPIs valid and in the monthly NPPES file (the `bulk`, `weekly_update` and `filler` providers;
`deactivated` ones are left out).

Planted, at exact counts recorded in the manifest (summed over the years; per year as counts
`hop.<year>.defect.<name>`), each planted row carrying exactly one defect:

    hop.cruft_npi_9999999999      9999999999 as from or to
    hop.invalid_check_digit       an NPI failing the Luhn check (other than 9999999999)
    hop.npi_not_in_nppes          a valid NPI found in no NPPES file (the `nowhere` providers)
    hop.privacy_violation         patient_count < 11
    hop.transactions_below_patients  transaction_count < patient_count
    hop.duplicate_edge            an extra row whose (from, to) appeared earlier in the same year
    hop.self_loop                 from_npi == to_npi

`hop.<year>.clean_rows` counts the rows with none of these (a duplicated edge counted once), and
`restricted/hop_teaming/expected/hop_cruft_npis.txt` lists, sorted, every NPI a cleaner must drop
(9999999999 and the invalid check digit NPIs used).

Determinism: every draw comes from `rng(seed, "hop", year, ...)` (numpy generators are seeded from it).
Speed: rows are formatted as a numpy byte matrix (digit lookup tables, 0-byte padding squeezed out) and
deflated (level 1) in a writer thread; about 2M rows/s on one core plus the deflate thread.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import zipfile
from dataclasses import dataclass, field
from math import gcd

import numpy as np

from include.sandbox import providers as pv
from include.sandbox.core import HOP_DIR, RESTRICTED, make_npi, rng, zip_info

HEADER = "from_npi,to_npi,patient_count,transaction_count,average_day_wait,std_day_wait"
CRUFT_NPI = 9_999_999_999
CHUNK = 1 << 18  # rows formatted per batch
CLEAN_CATEGORIES = {"bulk", "weekly_update"}  # spending providers in the monthly NPPES file (besides filler)
MIN_PATIENTS = 11
MIRROR_SHARE = 0.05  # rows turned into the reverse (B->A) of a nearby earlier edge (A->B)
CATEGORY_CODE = {**dict.fromkeys(CLEAN_CATEGORIES, 1), "clean": 1, "invalid": 2, "nowhere": 3}

# Defect name -> short key used in per-year counts.
DEFECTS: dict[str, str] = {
    "hop.cruft_npi_9999999999": "cruft",
    "hop.invalid_check_digit": "invalid",
    "hop.npi_not_in_nppes": "not_in_nppes",
    "hop.privacy_violation": "privacy",
    "hop.transactions_below_patients": "tx_below",
    "hop.duplicate_edge": "duplicate",
    "hop.self_loop": "self_loop",
}
DESCRIPTIONS: dict[str, str] = {
    "cruft": "edges with the classic cruft NPI 9999999999 as from_npi or to_npi",
    "invalid": "edges with an NPI failing the Luhn check (prefix 80840), other than 9999999999",
    "not_in_nppes": "edges with a valid NPI that is in no NPPES file (the API does not know it either)",
    "privacy": "edges with patient_count < 11 (CareSet never releases these)",
    "tx_below": "edges with transaction_count < patient_count",
    "duplicate": "extra rows repeating a (from_npi, to_npi) already seen in the same year",
    "self_loop": "edges with from_npi == to_npi",
}

README_PDF = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n"
    b"4 0 obj << /Length 64 >> stream\n"
    b"BT /F1 12 Tf 72 720 Td (DocGraph Hop Teaming - synthetic sandbox) Tj ET\n"
    b"endstream endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def edition(year: int) -> str:
    """The folder suffix of a year's release, as the public names vary."""
    if year <= 2016:
        return "_CC"
    if year in (2018, 2019):
        return "_Commercial"
    if year >= 2022:
        return "_NonCommercial"
    return ""


def folder_name(year: int) -> str:
    return f"DocGraph_Hop_Teaming_{year}{edition(year)}"


def csv_name(year: int) -> str:
    return f"DocGraph_Hop_Teaming_{year}.csv"


def zip_name(year: int) -> str:
    return f"DocGraph_Hop_Teaming_{year}.zip"


def apple_double(name: str) -> bytes:
    """A small AppleDouble file as macOS's Archive Utility leaves in `__MACOSX/` (Finder info only)."""
    finder_info = b"TEXTttxt" + bytes(24)
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    entries_at = len(header) + 2 * 12
    entries = struct.pack(">III", 9, entries_at, len(finder_info))
    attr = f"com.apple.quarantine;0081;00000000;Safari;{name}".encode()
    entries += struct.pack(">III", 2, entries_at + len(finder_info), len(attr))
    return header + entries + finder_info + attr


def _info(name: str, year: int, *, deflate: bool = False) -> zipfile.ZipInfo:
    """A member with a fixed timestamp (the release date), so the zip is byte-for-byte reproducible."""
    # level 1: fast, the CSV dominates the run time
    return zip_info(name, (year + 1, 6, 1, 9, 30, 0), deflate=deflate, level=1 if deflate else None)


# --------------------------------------------------------------------------------------------------
# Vectorised NPIs and formatting


def npis_of(indexes: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """`make_npi(i)` (valid) for an array of provider indexes, as int64, in blocks (flat memory)."""
    out = np.empty(len(indexes), dtype=np.int64)
    # Luhn over "80840" + nine digits: the prefix digits sit at positions 13..9 from the right.
    prefix = sum(_luhn_digit(int(d), position) for position, d in zip(range(13, 8, -1), "80840", strict=True))
    for start in range(0, len(indexes), block):
        x = (indexes[start:start + block].astype(np.int64) * 48_271 + 12_345_679) % 200_000_000
        first_nine = 100_000_000 + x
        total = np.full(len(x), prefix, dtype=np.int64)
        for position in range(9):  # position 0 is the ninth digit, doubled
            digit = (first_nine // 10**position) % 10
            if position % 2 == 0:
                digit *= 2
                digit -= 9 * (digit > 9)
            total += digit
        out[start:start + block] = first_nine * 10 + (10 - total % 10) % 10
    return out


def _luhn_digit(digit: int, position: int) -> int:
    if position % 2 == 0:
        digit *= 2
        return digit - 9 if digit > 9 else digit
    return digit


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ASCII digits of 0..99999 as (100000, 5) uint8: zero-filled; leading zeros as 0 bytes (keeping the
    last digit); and the same with 0 as no digit at all."""
    values = np.arange(100_000, dtype=np.int64)
    powers = 10 ** np.arange(4, -1, -1, dtype=np.int64)
    full = ((values[:, None] // powers) % 10 + 48).astype(np.uint8)
    pad = full.copy()
    pad[values[:, None] < powers[None, :]] = 0
    pad[:, -1] = full[:, -1]
    padz = pad.copy()
    padz[0] = 0
    return full, pad, padz


FULL, PAD, PADZ = _tables()
ROW_WIDTH = 57  # the widest row, padded with 0 bytes that format_rows squeezes out


def _put_number(out: np.ndarray, at: int, values: np.ndarray) -> None:
    """Write non-negative ints < 1e10 into out[:, at:at+10] without leading zeros (0-byte padding)."""
    hi = values // 100_000
    lo = values - hi * 100_000
    out[:, at:at + 5] = PADZ[hi]
    out[:, at + 5:at + 10] = np.where((hi > 0)[:, None], FULL[lo], PAD[lo])


def format_rows(src: np.ndarray, dst: np.ndarray, patients: np.ndarray, transactions: np.ndarray,
                avg_tenths: np.ndarray, std_hundredths: np.ndarray) -> bytes:
    """CSV lines (LF) for a batch, built as a byte matrix with 0-byte padding that is then squeezed out.

    NPIs are 10 digits; counts below 1e10; average_day_wait < 1000 with one decimal, std_day_wait < 1000
    with two."""
    out = np.empty((len(src), ROW_WIDTH), dtype=np.uint8)
    for at, npis in ((0, src), (11, dst)):
        hi = npis // 100_000
        out[:, at:at + 5] = FULL[hi]
        out[:, at + 5:at + 10] = FULL[npis - hi * 100_000]
    _put_number(out, 22, patients)
    _put_number(out, 33, transactions)
    whole = avg_tenths // 10
    out[:, 44:47] = PAD[whole][:, 2:]
    out[:, 48:49] = FULL[avg_tenths - whole * 10][:, 4:]
    whole = std_hundredths // 100
    out[:, 50:53] = PAD[whole][:, 2:]
    out[:, 54:56] = FULL[std_hundredths - whole * 100][:, 3:]
    out[:, [10, 21, 32, 43, 49]] = ord(",")
    out[:, [47, 53]] = ord(".")
    out[:, 56] = ord("\n")
    flat = out.ravel()
    return flat[flat != 0].tobytes()


class BackgroundWriter:
    """Writes byte blocks to a file object from a thread, so deflate (which releases the GIL) overlaps
    the formatting of the next batch. At most `depth` blocks wait: memory stays flat."""

    def __init__(self, out, depth: int = 2) -> None:
        self.out = out
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="hop-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (block := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.out.write(block)
                except BaseException as exc:  # re-raised in the producer
                    self.error = exc

    def write(self, block: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(block)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# The provider universe


@dataclass
class Universe:
    pool: np.ndarray  # NPIs (int64) of providers in the monthly NPPES file that clean edges use
    invalid: list[int]  # NPIs failing the Luhn check
    nowhere: list[int]  # valid NPIs in no NPPES file


def universe(seed: int, spending_npis: int, nppes_rows: int, want: int) -> Universe:
    codes = (CATEGORY_CODE.get(pv.category_of(seed, i, spending_npis), 0) for i in range(spending_npis))
    categories = np.fromiter(codes, dtype=np.int8, count=spending_npis)
    invalid_idx = np.flatnonzero(categories == CATEGORY_CODE["invalid"])[:want].tolist()
    nowhere_idx = np.flatnonzero(categories == CATEGORY_CODE["nowhere"])[:want].tolist()
    indexes = np.concatenate([np.flatnonzero(categories == CATEGORY_CODE["clean"]).astype(np.int64),
                              np.arange(spending_npis, max(spending_npis, nppes_rows), dtype=np.int64)])
    del categories
    # Too few planted-category providers at small scales: indexes far beyond any NPPES file (the
    # affine NPI map is a bijection below 2e8, so these NPIs are nobody's).
    spare = 190_000_000
    while len(invalid_idx) < min(want, 3):
        invalid_idx.append(spare)
        spare += 1
    while len(nowhere_idx) < min(want, 3):
        nowhere_idx.append(spare)
        spare += 1
    return Universe(
        pool=npis_of(indexes),
        invalid=[int(make_npi(i, valid=False)) for i in invalid_idx],
        nowhere=[int(make_npi(i)) for i in nowhere_idx],
    )


# --------------------------------------------------------------------------------------------------
# One year


@dataclass
class Plan:
    """Which rows of a year carry which defect (positions are row numbers, 0-based after the header)."""

    kind_at: dict[int, str] = field(default_factory=dict)
    dup_source: dict[int, int] = field(default_factory=dict)  # duplicate row -> earlier clean row
    exact_dup: set[int] = field(default_factory=set)  # duplicates copying every column


def plan_defects(seed: int, year: int, edges: int) -> Plan:
    r = rng(seed, "hop", year, "plan")
    base = max(2, edges // 200_000)
    counts = {short: base + r.randint(0, 3) for short in DEFECTS.values()}
    total = sum(counts.values())
    if edges < 4 * total:
        return Plan()  # too few rows to plant anything meaningful
    positions = r.sample(range(edges), total)
    plan = Plan()
    it = iter(positions)
    for short, count in counts.items():
        for _ in range(count):
            plan.kind_at[next(it)] = short
    used_sources: set[int] = set()
    for p, short in sorted(plan.kind_at.items()):
        if short != "duplicate":
            continue
        for _ in range(1000):
            q = r.randrange(0, p) if p else -1
            if q >= 0 and q not in plan.kind_at and q not in used_sources:
                break
        else:
            q = -1
        if q < 0:
            plan.kind_at[p] = "privacy"  # no earlier clean row to repeat (p is at the very start)
            continue
        used_sources.add(q)
        plan.dup_source[p] = q
        if r.random() < 0.5:
            plan.exact_dup.add(p)
    return plan


@dataclass
class YearResult:
    rows: int
    counts: dict[str, int]
    examples: dict[str, list[str]]
    dropped_npis: set[int]
    mirrored: int  # rows made the reverse of an earlier edge (natural reciprocal pairs come on top)


@dataclass
class Structure:
    """How clean edges are laid out: row -> (from group g, k-th target); pool positions, not NPIs."""

    pool_size: int
    ends: np.ndarray  # cumulative out-degrees
    degrees: np.ndarray
    offsets: np.ndarray  # per group: where its targets start
    step_inverse: int  # of the target stride, modulo pool_size - 1

    def has_edge(self, from_pos: np.ndarray, to_pos: np.ndarray) -> np.ndarray:
        """Whether the layout puts the edge from_pos -> to_pos in some row."""
        groups = len(self.degrees)
        q = np.minimum(from_pos, max(groups - 1, 0))
        distance = (to_pos - from_pos - 1) % self.pool_size
        k = ((distance - self.offsets[q]) * self.step_inverse) % (self.pool_size - 1)
        return (from_pos < groups) & (k < self.degrees[q])


def _mirror(gen: np.random.Generator, batch: Batch, group: np.ndarray, dst_pos: np.ndarray, special: np.ndarray,
            structure: Structure) -> int:
    """Turn a share of a batch's rows into the reverse of an earlier row of the batch, so B->A follows
    A->B as in real referral pairs. Planted rows and duplicate sources are left alone; an edge whose
    reverse the layout already has elsewhere is not mirrored (that would duplicate it)."""
    rows = np.flatnonzero(gen.random(len(batch.src)) < MIRROR_SHARE)
    sources = rows - 1 - gen.integers(0, 1_000, len(rows))
    keep = (sources >= 0) & ~np.isin(rows, special) & ~np.isin(sources, special) & ~np.isin(sources, rows)
    rows, sources = rows[keep], sources[keep]
    _, first = np.unique(sources, return_index=True)
    first.sort()
    rows, sources = rows[first], sources[first]
    fresh = ~structure.has_edge(dst_pos[sources], group[sources])
    rows, sources = rows[fresh], sources[fresh]
    batch.src[rows], batch.dst[rows] = batch.dst[sources], batch.src[sources]
    return len(rows)


@dataclass
class Batch:
    """One batch of rows (numpy columns, changed in place); `start` is the row number of the first."""

    start: int
    src: np.ndarray
    dst: np.ndarray
    patients: np.ndarray
    transactions: np.ndarray
    avg: np.ndarray
    std: np.ndarray


class Planter:
    """Applies a year's Plan batch by batch, keeping the counts of what it actually planted."""

    def __init__(self, year: int, plan: Plan, uni: Universe) -> None:
        self.year, self.plan, self.uni = year, plan, uni
        self.sources: dict[int, tuple[int, ...]] = {}  # duplicate source row -> its columns
        self.special = np.asarray(sorted({*plan.kind_at, *plan.dup_source.values()}), dtype=np.int64)
        self.pairs: set[tuple[int, int]] = set()  # pairs of planted rows (kept unique)
        self.counts = dict.fromkeys(DEFECTS.values(), 0)
        self.examples: dict[str, list[str]] = {short: [] for short in DEFECTS.values()}
        self.dropped: set[int] = set()
        self.mirrored = 0

    def special_in(self, start: int, stop: int) -> np.ndarray:
        """Planted rows and duplicate sources in [start, stop), relative to start."""
        lo, hi = np.searchsorted(self.special, [start, stop])
        return self.special[lo:hi] - start

    def plant(self, b: Batch) -> None:
        sources = set(self.plan.dup_source.values())
        for j in self.special_in(b.start, b.start + len(b.src)).tolist():
            row = b.start + j
            if row in sources:
                self.sources[row] = (int(b.src[j]), int(b.dst[j]), int(b.patients[j]), int(b.transactions[j]),
                                     int(b.avg[j]), int(b.std[j]))
            kind = self.plan.kind_at.get(row)
            if kind is None:
                continue
            pair = self._pair(kind, row, int(b.src[j]), int(b.dst[j]))
            if pair is None:
                continue  # could not be planted without repeating another planted pair: left clean
            if kind == "privacy":
                b.patients[j] = 1 + row % 10
                b.transactions[j] = b.patients[j] + row % 7
            elif kind == "tx_below":
                b.transactions[j] = max(1, int(b.patients[j]) - 1 - row % 9)
            elif kind == "duplicate" and row in self.plan.exact_dup:
                b.patients[j], b.transactions[j], b.avg[j], b.std[j] = self.sources[self.plan.dup_source[row]][2:]
            self.pairs.add(pair)
            b.src[j], b.dst[j] = pair
            self.counts[kind] += 1
            if len(self.examples[kind]) < 10:
                self.examples[kind].append(f"{self.year} data row {row + 1}: {pair[0]},{pair[1]},"
                                           f"{int(b.patients[j])},{int(b.transactions[j])}")

    def _pair(self, kind: str, row: int, a: int, b: int) -> tuple[int, int] | None:
        if kind in ("privacy", "tx_below"):
            return a, b
        if kind == "duplicate":
            src, dst = self.sources[self.plan.dup_source[row]][:2]
            return src, dst
        if kind == "self_loop":
            return next((c for c in ((a, a), (b, b)) if c not in self.pairs), None)
        if kind == "cruft":
            bad = CRUFT_NPI
        else:
            choices = self.uni.invalid if kind == "invalid" else self.uni.nowhere
            bad = choices[self.counts[kind] % len(choices)]
        candidates = ((bad, b), (a, bad)) if row % 2 == 0 else ((a, bad), (bad, b))
        pair = next((c for c in candidates if c not in self.pairs), None)
        if pair is not None and kind in ("cruft", "invalid"):
            self.dropped.add(bad)
        return pair


def _degrees(gen: np.random.Generator, edges: int, pool_size: int) -> np.ndarray:
    """Skewed out-degrees of the successive "from" providers, summing to `edges`."""
    if edges <= 0:
        return np.zeros(0, dtype=np.int64)
    mean = 2 * -(-edges // pool_size) + 1
    chunks: list[np.ndarray] = []
    total = 0
    while total < edges:
        d = 1 + np.floor(gen.pareto(2.0, size=max(1024, edges // (mean - 1) + 16)) * (mean - 1)).astype(np.int64)
        d = np.minimum(d, pool_size - 1)
        chunks.append(d)
        total += int(d.sum())
    degrees = np.concatenate(chunks)
    cum = np.cumsum(degrees)
    groups = int(np.searchsorted(cum, edges)) + 1
    degrees = degrees[:groups]
    degrees[-1] -= int(cum[groups - 1]) - edges
    if groups > pool_size:
        raise ValueError(f"hop_edges={edges} needs more 'from' providers than the {pool_size} in the NPPES pool")
    return degrees


def write_year(path, seed: int, year: int, edges: int, uni: Universe) -> YearResult:
    """Write one year's zip (atomically) and say what was planted in it."""
    pool_size = len(uni.pool)
    if pool_size < 3 or edges > pool_size * (pool_size - 1) // 4:
        raise ValueError(f"hop_edges={edges} is too many for a provider pool of {pool_size}")
    r = rng(seed, "hop", year, "edges")
    gen = np.random.Generator(np.random.PCG64(r.getrandbits(128)))
    pool = uni.pool.copy()
    gen.shuffle(pool)  # pool position g is the g-th "from" provider of the year
    degrees = _degrees(gen, edges, pool_size)
    ends = np.cumsum(degrees)
    starts_of = ends - degrees
    offsets = gen.integers(0, pool_size - 1, size=len(degrees))
    primes = (7_919, 104_729, 1_299_709, 15_485_863)
    step = next((p for p in primes if p < pool_size - 1 and gcd(p, pool_size - 1) == 1), 1)
    structure = Structure(pool_size, ends, degrees, offsets, pow(step, -1, pool_size - 1))
    planter = Planter(year, plan_defects(seed, year, edges), uni)

    tmp = path.with_name(path.name + ".tmp")
    folder = folder_name(year)
    member = f"{folder}/{csv_name(year)}"
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(_info(f"{folder}/", year), b"")
            with zf.open(_info(member, year, deflate=True), "w", force_zip64=True) as raw, \
                    BackgroundWriter(raw) as out:
                out.write(HEADER.encode() + b"\n")
                for start in range(0, edges, CHUNK):
                    stop = min(edges, start + CHUNK)
                    n = stop - start
                    rows = np.arange(start, stop, dtype=np.int64)
                    group = np.searchsorted(ends, rows, side="right")
                    k = rows - starts_of[group]
                    dst_pos = (group + 1 + (offsets[group] + k * step) % (pool_size - 1)) % pool_size
                    src, dst = pool[group], pool[dst_pos]
                    patients = MIN_PATIENTS + np.minimum(np.floor(gen.pareto(1.6, n) * 18), 999_000).astype(np.int64)
                    transactions = patients + np.floor(patients * gen.exponential(0.9, n)).astype(np.int64)
                    avg = np.minimum(np.floor(gen.gamma(1.4, 28.0, n) * 10), 3_650).astype(np.int64)  # <= 365 days
                    std = np.minimum(np.floor(avg * 10 * gen.uniform(0.0, 1.6, n)), 99_999).astype(np.int64)
                    batch = Batch(start, src, dst, patients, transactions, avg, std)
                    planter.mirrored += _mirror(gen, batch, group, dst_pos, planter.special_in(start, stop), structure)
                    planter.plant(batch)
                    out.write(format_rows(src, dst, patients, transactions, avg, std))
            zf.writestr(_info(f"{folder}/DocGraph Readme.pdf", year), README_PDF)
            zf.writestr(_info("__MACOSX/", year), b"")
            zf.writestr(_info(f"__MACOSX/{folder}/", year), b"")
            zf.writestr(_info(f"__MACOSX/{folder}/._{csv_name(year)}", year), apple_double(csv_name(year)))
            zf.writestr(_info(f"__MACOSX/{folder}/._DocGraph Readme.pdf", year), apple_double("DocGraph Readme.pdf"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return YearResult(rows=edges, counts=planter.counts, examples=planter.examples, dropped_npis=planter.dropped,
                      mirrored=planter.mirrored)


def generate(ctx) -> None:
    seed, scale, m = ctx.seed, ctx.scale, ctx.manifest
    years = tuple(scale.hop_years)
    if not years:
        return
    want = max(16, scale.hop_edges // 50_000)
    uni = universe(seed, scale.spending_npis, scale.nppes_rows, want)
    totals = dict.fromkeys(DEFECTS.values(), 0)
    examples: dict[str, list[str]] = {short: [] for short in DEFECTS.values()}
    dropped: set[int] = set()
    for year in years:
        path = ctx.path(RESTRICTED, HOP_DIR, zip_name(year))
        result = write_year(path, seed, year, scale.hop_edges, uni)
        m.add_file(ctx.root, path, "hop_teaming", year=year, rows=result.rows,
                   member=f"{folder_name(year)}/{csv_name(year)}")
        m.count(f"hop.{year}.rows", result.rows)
        m.count(f"hop.{year}.clean_rows", result.rows - sum(result.counts.values()))
        m.count(f"hop.{year}.mirrored_rows", result.mirrored)
        for short, count in result.counts.items():
            m.count(f"hop.{year}.defect.{short}", count)
            totals[short] += count
            examples[short].extend(result.examples[short])
        dropped |= result.dropped_npis
    m.count("hop.years", list(years))
    m.count("hop.pool_npis", len(uni.pool))
    for name, short in DEFECTS.items():
        m.defect(name, totals[short], DESCRIPTIONS[short], examples[short])

    cruft = ctx.path(RESTRICTED, HOP_DIR, "expected", "hop_cruft_npis.txt")
    tmp = cruft.with_name(cruft.name + ".tmp")
    tmp.write_text("".join(f"{npi:010d}\n" for npi in sorted(dropped)))
    os.replace(tmp, cruft)
    m.add_file(ctx.root, cruft, "hop_teaming_expected", rows=len(dropped))
