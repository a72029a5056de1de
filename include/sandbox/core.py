"""Shared ground of the sandbox generator: scales, deterministic randomness, NPI check digits, the
output layout and the manifest of what was generated (with the planted defects and their counts).

Determinism: every generator draws from `rng(seed, "<its name>", ...)`, a private random stream per
purpose, so adding a generator or changing one never changes what another writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import zipfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from include.common.npi import check_digit, is_valid_npi  # noqa: F401  (re-exported for the sandbox)

# --------------------------------------------------------------------------------------------------
# Scales


@dataclass(frozen=True)
class Scale:
    """How much of everything to generate. Every count can be overridden (`--set name=value`)."""

    name: str
    spending_npis: int  # distinct NPIs that appear in the spending parquet
    spending_rows: int  # rows of the spending parquet
    nppes_rows: int  # rows of the monthly npidata file (spending NPIs in bulk + other providers)
    weekly_files: int  # weekly V2 bundles after the monthly one
    hcpcs_codes: int  # distinct codes in the spending parquet
    medicare_benes: int  # beneficiaries per Medicare year
    medicare_fwf_years: tuple[int, ...]  # 2011+: FTS + fixed-width .dat
    medicare_sas_years: tuple[int, ...]  # 1999-2010: SAS7BDAT
    hop_years: tuple[int, ...]
    hop_edges: int  # rows per Hop Teaming year

    def with_overrides(self, overrides: dict[str, str]) -> Scale:
        known = {f.name: f.type for f in fields(self)}
        values: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in known or key == "name":
                raise ValueError(f"unknown scale setting {key!r}; known: {', '.join(sorted(k for k in known if k != 'name'))}")
            current = getattr(self, key)
            if isinstance(current, tuple):
                values[key] = tuple(int(v) for v in raw.split(",") if v.strip())
            else:
                values[key] = int(raw.replace("_", ""))
        return replace(self, **values)


SCALES: dict[str, Scale] = {
    # unit tests: seconds
    "tiny": Scale(
        name="tiny",
        spending_npis=400,
        spending_rows=4_000,
        nppes_rows=600,
        weekly_files=2,
        hcpcs_codes=150,
        medicare_benes=300,
        medicare_fwf_years=(2011, 2015),
        medicare_sas_years=(2005, 2010),
        hop_years=(2021, 2022),
        hop_edges=2_000,
    ),
    # make demo: under a minute
    "demo": Scale(
        name="demo",
        spending_npis=4_000,
        spending_rows=100_000,
        nppes_rows=20_000,
        weekly_files=4,
        hcpcs_codes=800,
        medicare_benes=5_000,
        medicare_fwf_years=(2011, 2012, 2015, 2016),
        medicare_sas_years=(2005, 2009, 2010),
        hop_years=(2020, 2021, 2022),
        hop_edges=100_000,
    ),
    # benchmarks: real sizes (NPPES ~9M x 330 columns), streamed with flat memory
    "full": Scale(
        name="full",
        spending_npis=1_800_000,
        spending_rows=20_000_000,
        nppes_rows=9_000_000,
        weekly_files=4,
        hcpcs_codes=10_900,
        medicare_benes=1_000_000,
        medicare_fwf_years=(2015,),
        medicare_sas_years=(2010,),
        hop_years=(2022,),
        hop_edges=20_000_000,
    ),
}


# --------------------------------------------------------------------------------------------------
# Randomness


def rng(seed: int, *purpose: Any) -> random.Random:
    """A private, reproducible random stream for one purpose (e.g. rng(seed, "nppes", "weekly", 2))."""
    digest = hashlib.sha256(repr((seed, *purpose)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def stable_fraction(seed: int, *key: Any) -> float:
    """A number in [0, 1) fixed by (seed, key): decides categories without drawing from a stream."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# --------------------------------------------------------------------------------------------------
# NPI check digit (Luhn over the prefix 80840 + the first nine digits)


# The project's own check (include/common/npi.py), under the names the sandbox modules use.
npi_check_digit = check_digit


def make_npi(index: int, *, valid: bool = True) -> str:
    """The NPI of provider `index`: unique per index, first digit 1 or 2, check digit right or wrong."""
    # An affine permutation of [0, 2e8) spreads consecutive indexes over the NPI space.
    x = (index * 48_271 + 12_345_679) % 200_000_000
    first_nine = f"{100_000_000 + x:09d}"
    check = npi_check_digit(first_nine)
    if not valid:
        check = (check + 1 + index % 9) % 10
    return first_nine + str(check)


# --------------------------------------------------------------------------------------------------
# Output layout: what the server serves lives under site/ at the real URL paths.

SITE = "site"  # served tree; relative paths are the real URL paths
API = "api"  # data behind the loopback APIs (jsonl)
RESTRICTED = "restricted"  # files users place by hand (Medicare, licensed Hop Teaming copies)
OVERLAYS = "manually_cleaned"

MEDICAID_PATH = "datasets/medicaid-provider-spending/2026-02-09/medicaid-provider-spending.parquet"
NPPES_INDEX_PATH = "nppes/NPI_Files.html"
CPT_INDEX_PATH = "medicare/payment/fee-schedules/physician/national-payment-amount-file/pfrev26a"
NUCC_DIR = "images/stories/CSV"
HOP_DIR = "hop_teaming"
NPI_API_DATA = "npi_registry.jsonl"
HCPCS_API_DATA = "hcpcs.jsonl"


# Zip members carry this fixed time: with the clock's, the same seed would give other bytes each run.
ZIP_TIME = (2026, 11, 2, 9, 30, 0)


def zip_info(name: str, date_time: tuple[int, ...] = ZIP_TIME, *, deflate: bool = True,
             level: int | None = None) -> zipfile.ZipInfo:
    """A zip member (for ZipFile.open(..., "w") / writestr) with a fixed time and plain mode bits;
    `level` sets the deflate level (default: zlib's)."""
    info = zipfile.ZipInfo(name, date_time=date_time)
    is_dir = name.endswith("/")
    info.external_attr = ((0o40755 << 16) | 0x10) if is_dir else (0o100644 << 16)
    if deflate and not is_dir:
        info.compress_type = zipfile.ZIP_DEFLATED
        if level is not None:
            info._compresslevel = level  # ZipInfo.compress_level on Python 3.13+
    return info


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def file_digest(path: Path, chunk: int = 1 << 20) -> tuple[int, str]:
    """(bytes, sha256) of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(chunk):
            size += len(block)
            h.update(block)
    return size, h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Manifest


@dataclass
class Manifest:
    """What a `generate` run wrote and what it planted, so tests can assert exact numbers.

    files:    relative path -> {bytes, sha256, rows?, kind, ...}
    counts:   named facts ("spending.distinct_npis": 400, ...)
    defects:  planted defect -> {count, description, examples?}
    """

    seed: int
    scale: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    defects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_file(self, root: Path, path: Path, kind: str, **info: Any) -> None:
        size, sha = file_digest(path)
        self.files[path.relative_to(root).as_posix()] = {"kind": kind, "bytes": size, "sha256": sha, **info}

    def count(self, name: str, value: Any) -> None:
        self.counts[name] = value

    def defect(self, name: str, count: int, description: str, examples: list[Any] | None = None) -> None:
        entry: dict[str, Any] = {"count": count, "description": description}
        if examples:
            entry["examples"] = examples[:10]
        self.defects[name] = entry

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=list)

    def write(self, root: Path) -> Path:
        path = root / "manifest.json"
        atomic_write_bytes(path, self.to_json().encode())
        return path

    @classmethod
    def read(cls, root: str | os.PathLike) -> Manifest:
        data = json.loads((Path(root) / "manifest.json").read_text())
        return cls(**data)
