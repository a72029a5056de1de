"""NPPES bulk preload: resolve the wanted NPIs from the local NPPES files before any API call.

The download code leaves the bundles extracted under `raw/nppes/monthly/<bundle>/` and
`raw/nppes/weekly/<bundle>/` (include/download/sources.py). `find_bulk_files` picks the newest
monthly `npidata_pfile_YYYYMMDD-YYYYMMDD.csv` with its side members (`othername_pfile_…`,
`pl_pfile_…`, `endpoint_pfile_…`) and the weekly bundles whose period ends after the monthly cut,
oldest first. `preload` streams them and writes one `found`/`bulk` cache row per wanted NPI:

    files = find_bulk_files(data_root / "raw" / "nppes")
    stats = preload(conn, files)                 # wanted = maps.npi_wanted (Luhn-valid ones)

How it stays fast and flat at 9M rows x 330 columns:
- the main CSVs are read with pyarrow's streaming reader (4 MB blocks), projecting only the columns
  the API shape needs (326 of 330; all as strings, so leading zeros stay), and each block is
  filtered to the wanted NPIs before any value becomes a Python object (`NpiSet`: sorted int64 +
  numpy searchsorted; `pc.is_in` would hash the 1.8M wanted NPIs again for every block). For big
  files (`reader="auto"`) the parsing and filtering run in a reader process that hands over only
  the wanted rows as Arrow IPC, so they get a core of their own; the build and the writers here
  share one (the GIL);
- the side files are streamed the same way; the wanted NPIs' rows stay in Arrow (sorted, with an
  npi -> row-range index) and become dicts only for the block being built;
- cache rows go out in batches (`batch_rows`) through `cache.upsert` on writer threads (two
  connections by default: one batch is COPYed while the other's INSERT runs), so PostgreSQL works
  while the next batch is built; the cyclic GC is paused meanwhile (the results have no cycles, and
  its full collections would walk every live batch again and again).
Memory: the wanted set (8 bytes an NPI), the side rows of wanted NPIs of one bundle in Arrow, a few
blocks, and one batch being built, one waiting and one per writer.

Weekly precedence: a weekly row replaces the monthly row and later weeklies replace earlier ones. The
weekly main files are scanned (NPI column only) first, so each NPI is written once, from the newest
file that has it: a killed run never leaves an outdated monthly row behind a newer weekly one, and
batches may land in any order. (The outcome equals processing monthly then weeklies with later
upserts winning.) Side rows come from the bundle the main row comes from.

Errors (`NppesBulkError`, naming the file and, for a malformed row, the line): a missing required
column of any main or side file is found before anything is written; a malformed row stops the run
where it is met (the batches already upserted stay: they are correct rows; nothing marks the preload
complete, that is the caller's step).

The result objects have the NPI Registry API v2.1 shape (include/sandbox/providers.py `api_result`):
`number, enumeration_type, basic, addresses [LOCATION, MAILING], practiceLocations, taxonomies,
identifiers, endpoints, other_names`. What bulk cannot reproduce, documented:
- `created_epoch` / `last_updated_epoch` are absent (not in the files);
- taxonomy `desc` comes from the NUCC taxonomy (`taxonomy_descriptions`, see
  `load_taxonomy_descriptions`); without one `desc` is omitted;
- other-name `type` is the NPPES code value's text (3 = "Doing Business As", …);
- empty values are left out of `basic` (as the API does); a deactivated NPI has only
  `basic = {"status": "D", "deactivation_date": …}` and empty lists, `enumeration_type` None when the
  file does not say;
- dates are converted from MM/DD/YYYY to YYYY-MM-DD, 10-digit phone numbers to 617-555-1234;
- `wanted` strings that are no NPI (ten digits, the first not 0), e.g. "UNKNOWN", are not looked for.
"""

from __future__ import annotations

import csv
import gc
import io
import logging
import os
import pickle
import queue
import re
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from include.common.errors import ClaimsflowError
from include.maps import cache
from include.maps.cache import CacheRow

log = logging.getLogger("claimsflow.maps.nppes_bulk")

BLOCK_SIZE = 4 << 20  # bytes of CSV per pyarrow block (larger ones cost RSS, not speed)
DEFAULT_BATCH_ROWS = 10_000
PROCESS_READER_BYTES = 256 << 20  # main files larger than this are parsed in a reader process
SOURCE_TAG = "nppes_bulk"

_MAIN_RE = re.compile(r"^npidata_pfile_(\d{8})-(\d{8})\.csv$", re.IGNORECASE)
SIDE_KINDS = ("othername", "pl", "endpoint")


class NppesBulkError(ClaimsflowError):
    """An NPPES bulk file is missing, lacks a required column or has a malformed row."""


# ---------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class BundleFiles:
    """One bundle's main npidata file, its coverage period and its side members (None if absent)."""

    main: Path
    kind: str  # monthly | weekly
    start: str  # YYYYMMDD
    end: str  # YYYYMMDD
    othername: Path | None = None
    pl: Path | None = None
    endpoint: Path | None = None

    @property
    def name(self) -> str:
        return self.main.name


@dataclass(frozen=True)
class BulkFiles:
    monthly: BundleFiles
    weekly: tuple[BundleFiles, ...] = ()  # oldest -> newest, all ending after the monthly cut

    @property
    def bundles(self) -> tuple[BundleFiles, ...]:
        """Processing order: the monthly, then the weeklies oldest first (later rows win)."""
        return (self.monthly, *self.weekly)


def _hidden(path: Path, root: Path) -> bool:
    """Inside a staging/old/quarantine folder (names starting with a dot)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _bundle(main: Path, kind: str) -> BundleFiles:
    m = _MAIN_RE.match(main.name)
    assert m is not None
    start, end = m.group(1), m.group(2)
    sides: dict[str, Path | None] = {}
    for side in SIDE_KINDS:
        exact = main.with_name(f"{side}_pfile_{start}-{end}.csv")
        if exact.is_file():
            sides[side] = exact
            continue
        found = sorted(p for p in main.parent.glob(f"{side}_pfile_*.csv")
                       if not p.name.lower().endswith("_fileheader.csv"))
        if len(found) > 1:
            raise NppesBulkError(f"several {side}_pfile CSVs beside {main.name}: {', '.join(p.name for p in found)}",
                                 source=str(main.parent))
        sides[side] = found[0] if found else None
        if not found:
            log.warning("%s: no %s_pfile member beside it; its %s are left empty", main, side, side)
    return BundleFiles(main=main, kind=kind, start=start, end=end, **sides)


def _mains(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("npidata_pfile_*.csv")
                  if _MAIN_RE.match(p.name) and p.is_file() and not _hidden(p, folder))


def find_bulk_files(nppes_root: str | Path) -> BulkFiles:
    """The newest monthly npidata file under `<nppes_root>/monthly/` (by the period's end date in its
    name) and the weekly ones under `<nppes_root>/weekly/` whose period ends after it, oldest first."""
    root = Path(nppes_root)
    monthly = [_bundle(p, "monthly") for p in _mains(root / "monthly")]
    if not monthly:
        raise NppesBulkError("no extracted monthly npidata_pfile_YYYYMMDD-YYYYMMDD.csv",
                             source=str(root / "monthly"))
    newest = max(monthly, key=lambda b: (b.end, b.start, str(b.main)))
    weekly: dict[tuple[str, str], BundleFiles] = {}
    for b in (_bundle(p, "weekly") for p in _mains(root / "weekly")):
        if b.end > newest.end:
            weekly.setdefault((b.start, b.end), b)  # the same week extracted twice counts once
    ordered = tuple(weekly[k] for k in sorted(weekly, key=lambda k: (k[1], k[0])))
    return BulkFiles(monthly=newest, weekly=ordered)


# ---------------------------------------------------------------------------------------------- columns

_MAILING = "Business Mailing Address"
_PRACTICE = "Business Practice Location Address"


def _address_columns(kind: str) -> dict[str, str]:
    return {
        "line1": f"Provider First Line {kind}",
        "line2": f"Provider Second Line {kind}",
        "city": f"Provider {kind} City Name",
        "state": f"Provider {kind} State Name",
        "postal": f"Provider {kind} Postal Code",
        "country": f"Provider {kind} Country Code (If outside U.S.)",
        "phone": f"Provider {kind} Telephone Number",
        "fax": f"Provider {kind} Fax Number",
    }


ADDRESS_COLUMNS = {"LOCATION": _address_columns(_PRACTICE), "MAILING": _address_columns(_MAILING)}
TAXONOMY_SLOTS = 15
IDENTIFIER_SLOTS = 50


def _taxonomy_columns(i: int) -> tuple[str, str, str, str, str]:
    return (f"Healthcare Provider Taxonomy Code_{i}", f"Provider License Number_{i}",
            f"Provider License Number State Code_{i}", f"Healthcare Provider Primary Taxonomy Switch_{i}",
            f"Healthcare Provider Taxonomy Group_{i}")


def _identifier_columns(i: int) -> tuple[str, str, str, str]:
    return (f"Other Provider Identifier_{i}", f"Other Provider Identifier Type Code_{i}",
            f"Other Provider Identifier State_{i}", f"Other Provider Identifier Issuer_{i}")


# (API key in basic, NPPES column); empty values are left out.
INDIVIDUAL_BASIC = (
    ("first_name", "Provider First Name"),
    ("last_name", "Provider Last Name (Legal Name)"),
    ("middle_name", "Provider Middle Name"),
    ("name_prefix", "Provider Name Prefix Text"),
    ("name_suffix", "Provider Name Suffix Text"),
    ("credential", "Provider Credential Text"),
)
ORGANIZATION_BASIC = (
    ("organization_name", "Provider Organization Name (Legal Business Name)"),
    ("authorized_official_first_name", "Authorized Official First Name"),
    ("authorized_official_last_name", "Authorized Official Last Name"),
    ("authorized_official_middle_name", "Authorized Official Middle Name"),
    ("authorized_official_name_prefix", "Authorized Official Name Prefix Text"),
    ("authorized_official_name_suffix", "Authorized Official Name Suffix Text"),
    ("authorized_official_credential", "Authorized Official Credential Text"),
    ("authorized_official_title_or_position", "Authorized Official Title or Position"),
    ("parent_organization_legal_business_name", "Parent Organization LBN"),
)
OTHER_PERSON_NAME = (
    ("first_name", "Provider Other First Name"),
    ("last_name", "Provider Other Last Name"),
    ("middle_name", "Provider Other Middle Name"),
    ("prefix", "Provider Other Name Prefix Text"),
    ("suffix", "Provider Other Name Suffix Text"),
    ("credential", "Provider Other Credential Text"),
)
SEX_COLUMNS = ("Provider Sex Code", "Provider Gender Code")  # newer files / older files

MAIN_REQUIRED: tuple[str, ...] = (
    "NPI", "Entity Type Code",
    "Provider Organization Name (Legal Business Name)", "Provider Last Name (Legal Name)", "Provider First Name",
    *ADDRESS_COLUMNS["LOCATION"].values(), *ADDRESS_COLUMNS["MAILING"].values(),
    "Provider Enumeration Date", "Last Update Date", "NPI Deactivation Date",
    *_taxonomy_columns(1)[:4], *_identifier_columns(1),
)
MAIN_OPTIONAL: tuple[str, ...] = (
    *(c for _, c in INDIVIDUAL_BASIC), *(c for _, c in ORGANIZATION_BASIC), *(c for _, c in OTHER_PERSON_NAME),
    "Authorized Official Telephone Number", "Provider Other Organization Name",
    "Provider Other Organization Name Type Code", "Provider Other Last Name Type Code",
    "NPI Reactivation Date", *SEX_COLUMNS, "Is Sole Proprietor", "Is Organization Subpart", "Certification Date",
    *(c for i in range(1, TAXONOMY_SLOTS + 1) for c in _taxonomy_columns(i)),
    *(c for i in range(1, IDENTIFIER_SLOTS + 1) for c in _identifier_columns(i)),
)
MAIN_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys((*MAIN_REQUIRED, *MAIN_OPTIONAL)))

# Side members: normalised header name (lowercase alphanumerics) -> our field name.
OTHERNAME_FIELDS = {"npi": "npi", "providerotherorganizationname": "name",
                    "providerotherorganizationnametypecode": "code"}
_PL_PREFIX = "providersecondarypracticelocationaddress"
PL_FIELDS = {"npi": "npi", **{_PL_PREFIX + k: v for k, v in (
    ("addressline1", "line1"), ("addressline2", "line2"), ("cityname", "city"), ("statename", "state"),
    ("postalcode", "postal"), ("countrycodeifoutsideus", "country"), ("telephonenumber", "phone"),
    ("telephoneextension", "extension"), ("faxnumber", "fax"))}}
ENDPOINT_FIELDS = {
    "npi": "npi", "endpointtype": "endpointType", "endpointtypedescription": "endpointTypeDescription",
    "endpoint": "endpoint", "affiliation": "affiliation", "endpointdescription": "endpointDescription",
    "affiliationlegalbusinessname": "affiliationName", "usecode": "useCode", "usedescription": "useDescription",
    "otherusedescription": "useOtherDescription", "contenttype": "contentType",
    "contentdescription": "contentTypeDescription", "othercontentdescription": "contentOtherDescription",
    "affiliationaddresslineone": "address_1", "affiliationaddresslinetwo": "address_2",
    "affiliationaddresscity": "city", "affiliationaddressstate": "state", "affiliationaddresscountry": "country_code",
    "affiliationaddresspostalcode": "postal_code",
}
SIDE_FIELDS = {"othername": OTHERNAME_FIELDS, "pl": PL_FIELDS, "endpoint": ENDPOINT_FIELDS}
SIDE_LABELS = {"npi": "NPI", "name": "Provider Other Organization Name",
               "code": "Provider Other Organization Name Type Code",
               "line1": "Provider Secondary Practice Location Address- Address Line 1",
               "city": "Provider Secondary Practice Location Address- City Name",
               "state": "Provider Secondary Practice Location Address- State Name",
               "postal": "Provider Secondary Practice Location Address- Postal Code",
               "endpointType": "Endpoint Type", "endpoint": "Endpoint"}  # for messages (matching ignores case/punctuation)
SIDE_REQUIRED = {
    "othername": ("npi", "name", "code"),
    "pl": ("npi", "line1", "city", "state", "postal"),
    "endpoint": ("npi", "endpointType", "endpoint"),
}

# NPPES code values (Readme / CodeValues) the API spells out.
OTHER_NAME_TYPES = {"1": "Former Name", "2": "Professional Name", "3": "Doing Business As",
                    "4": "Former Legal Business Name", "5": "Other Name"}
IDENTIFIER_TYPES = {"01": "Other", "02": "MEDICARE UPIN", "04": "MEDICARE ID-Type Unspecified", "05": "MEDICAID",
                    "06": "MEDICARE OSCAR/CERTIFICATION", "07": "MEDICARE NSC", "08": "MEDICARE PIN"}
COUNTRY_NAMES = {"US": "United States"}
YES_NO = {"Y": "YES", "N": "NO"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ---------------------------------------------------------------------------------------------- value helpers


def iso_date(value: str) -> str:
    """MM/DD/YYYY (NPPES) -> YYYY-MM-DD (API); anything else is returned unchanged."""
    if len(value) == 10 and value[2] == "/" and value[5] == "/":
        return f"{value[6:]}-{value[:2]}-{value[3:5]}"
    return value


def api_phone(value: str) -> str:
    """6175551234 -> 617-555-1234 (as the API shows numbers); anything else unchanged."""
    if len(value) == 10 and value.isdigit():
        return f"{value[:3]}-{value[3:6]}-{value[6:]}"
    return value


def _address(line1: str, line2: str, city: str, state: str, postal: str, country: str, phone: str, fax: str,
             purpose: str | None, extension: str = "") -> dict[str, Any]:
    country = country or "US"
    out: dict[str, Any] = {"country_code": country}
    if country in COUNTRY_NAMES:
        out["country_name"] = COUNTRY_NAMES[country]
    out.update(address_type="DOM" if country == "US" else "FGN", address_1=line1, address_2=line2, city=city,
               state=state, postal_code=postal)
    if phone:
        out["telephone_number"] = api_phone(phone)
    if extension:
        out["telephone_extension"] = extension
    if purpose:
        out["address_purpose"] = purpose
    if fax:
        out["fax_number"] = api_phone(fax)
    return out


NUCC_FIELDS = ("code", "grouping", "classification", "specialization", "display_name")


def read_nucc_taxonomy(nucc_csv: str | Path) -> list[dict[str, str]]:
    """The NUCC taxonomy CSV as rows of NUCC_FIELDS, columns matched by name: the current header
    (Code, Grouping, Classification, Specialization, …, Display Name, Section), the older one whose
    `Type` is the grouping, with or without Display Name or the date columns; UTF-8 or older cp1252."""
    path = Path(nucc_csv)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    reader = csv.DictReader(text.splitlines(keepends=True))
    fields = {_norm(f): f for f in reader.fieldnames or []}
    if "grouping" not in fields and "type" in fields:
        fields["grouping"] = fields["type"]
    if not {"code", "classification"} <= fields.keys():
        raise NppesBulkError("not a NUCC taxonomy CSV (needs Code and Classification columns)", source=str(path))
    out = []
    for row in reader:
        values = {f: (row.get(fields[f]) or "").strip() if f in fields else "" for f in NUCC_FIELDS}
        if values["code"]:
            out.append(values)
    return out


def load_taxonomy_descriptions(nucc_csv: str | Path) -> dict[str, str]:
    """Taxonomy code -> the API's `desc` ("Classification" or "Classification, Specialization")."""
    return {r["code"]: f"{r['classification']}, {r['specialization']}" if r["specialization"] else r["classification"]
            for r in read_nucc_taxonomy(nucc_csv)}


# ---------------------------------------------------------------------------------------------- CSV reading


def read_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            return next(csv.reader(f), [])
    except OSError as exc:
        raise NppesBulkError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc


def _row_number(message: str) -> int | None:
    m = re.search(r"Row #(\d+)", message)
    return int(m.group(1)) if m else None


def _open(path: Path, columns: list[str], *, block_size: int, threads: bool, skip: int = 0,
          on_invalid=None) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block_size, use_threads=threads, skip_rows_after_names=skip),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(include_columns=columns, column_types={c: pa.string() for c in columns},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def _locate_error(path: Path, column: str, rows_ok: int, block_size: int) -> int | None:
    """The physical line of the first malformed row after `rows_ok` good rows: a serial re-read (the
    threaded reader does not know line numbers), only on the error path."""
    bad: list[Any] = []

    def on_invalid(row) -> str:
        bad.append(row)
        return "error"

    try:
        for _batch in _open(path, [column], block_size=block_size, threads=False, skip=rows_ok, on_invalid=on_invalid):
            pass
    except (pa.ArrowInvalid, OSError) as exc:
        if bad and bad[-1].number is not None:
            return bad[-1].number
        return _row_number(str(exc))
    return None


def _stream(path: Path, columns: list[str], *, block_size: int = BLOCK_SIZE) -> Iterator[pa.RecordBatch]:
    """The projected columns of a CSV, all strings, block by block (parsed ahead on Arrow's threads);
    a malformed row raises NppesBulkError naming the file and the line."""
    rows_ok = 0
    try:
        for batch in _open(path, columns, block_size=block_size, threads=True):
            rows_ok += batch.num_rows
            yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        message = str(exc)
        line = _row_number(message) or _locate_error(path, columns[0], rows_ok, block_size)
        detail = re.sub(r"^Row #\d+: ", "", message.removeprefix("CSV parse error: "))
        raise NppesBulkError(f"malformed row: {detail[:300]}", source=str(path), line=line) from exc
    except OSError as exc:
        raise NppesBulkError(f"cannot read: {exc}", source=str(path)) from exc


def _main_projection(path: Path) -> list[str]:
    header = read_header(path)
    present = set(header)
    missing = [c for c in MAIN_REQUIRED if c not in present]
    if missing:
        raise NppesBulkError(f"not an NPPES npidata file: missing required column(s) {', '.join(repr(c) for c in missing)}",
                             source=str(path), line=1)
    return [c for c in MAIN_COLUMNS if c in present]


def _side_projection(path: Path, kind: str) -> dict[str, str]:
    """field name -> actual header name of a side member."""
    header = read_header(path)
    fields = SIDE_FIELDS[kind]
    found: dict[str, str] = {}
    for name in header:
        key = fields.get(_norm(name))
        if key and key not in found:
            found[key] = name
    missing = [f for f in SIDE_REQUIRED[kind] if f not in found]
    if missing:
        names = ", ".join(repr(SIDE_LABELS.get(f, f)) for f in missing)
        raise NppesBulkError(f"not an NPPES {kind}_pfile: missing required column(s) {names}",
                             source=str(path), line=1)
    return found


def _nonempty(column: pa.Array) -> bool:
    """Has any value a character? (From the offsets buffer: no pass over the data.)"""
    n = len(column)
    if n == 0:
        return False
    if column.type not in (pa.string(), pa.binary()):
        return (pc.max(pc.binary_length(column)).as_py() or 0) > 0
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    return bool(offsets[column.offset + n] != offsets[column.offset])


_DONE = object()


def _prefetch(batches: Iterator[pa.RecordBatch], depth: int = 3) -> Iterator[pa.RecordBatch]:
    """Iterate `batches` on a thread of its own, `depth` blocks ahead: pyarrow's streaming reader parses
    a block when asked for it, and parsing releases the GIL, so the next blocks are parsed on another
    core while this thread turns the current one into results. Errors surface here, in order."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer is gone

    def run() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer
            put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # e.g. stops a reader process

    thread = threading.Thread(target=run, name="nppes-bulk-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------------------------------- NPI sets

_NPI_RE = r"^[1-9][0-9]{9}$"  # what an NPI looks like (NPPES has nothing else in its NPI columns)


class NpiSet:
    """A set of NPIs that answers "which rows of this Arrow column are in it?" without rebuilding a
    hash table per call: `pc.is_in(block, value_set=wanted)` hashes the whole value set on every call
    (0.4 s per block with 1.8M NPIs, i.e. ~17 min over the 9M-row file). The NPIs are kept as a sorted
    int64 array and looked up with numpy's searchsorted (~0.3 ms per block). Exact: only strings of
    ten digits, the first not 0, are NPIs (anything else in the wanted set, e.g. "UNKNOWN" from the
    spending data, can be in no NPPES file and is dropped), and such a string maps to one integer."""

    def __init__(self, npis: pa.Array) -> None:
        npis = npis.cast(pa.string()).drop_null()
        shaped = npis.filter(pc.match_substring_regex(npis, _NPI_RE))
        self.sorted = np.unique(pc.cast(shaped, pa.int64()).to_numpy())
        self.dropped = len(pc.unique(npis)) - len(self.sorted)

    def __len__(self) -> int:
        return len(self.sorted)

    def mask(self, column: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A boolean array: which values of `column` (strings) are in the set."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        n = len(column)
        if n == 0 or not len(self.sorted):
            return pa.array(np.zeros(n, dtype=bool))
        shaped = None
        try:
            # fast path: ten characters that parse as an integer >= 1e9 are ten digits, the first not 0
            if column.null_count or not pc.all(pc.equal(pc.utf8_length(column), 10)).as_py():
                raise ValueError
            ints = pc.cast(column, pa.int64()).to_numpy()
        except (ValueError, pa.ArrowInvalid):
            shaped = pc.fill_null(pc.match_substring_regex(column, _NPI_RE), False)
            ints = pc.cast(pc.if_else(shaped, column, "0"), pa.int64()).to_numpy()
        at = np.searchsorted(self.sorted, ints)
        at[at == len(self.sorted)] = 0
        hit = self.sorted[at] == ints  # every kept NPI is >= 1e9, so a short/signed number never hits
        if shaped is not None:
            hit &= shaped.to_numpy(zero_copy_only=False)
        return pa.array(hit)


# ---------------------------------------------------------------------------------------------- side members


class _Side:
    """The wanted NPIs' rows of one side member, kept in Arrow (sorted by NPI, file order kept within an
    NPI) with an index npi -> (start, stop); entries become dicts only for the block being built."""

    def __init__(self, path: Path, kind: str, wanted: NpiSet, stats: PreloadStats) -> None:
        self.kind = kind
        columns = _side_projection(path, kind)
        self.fields = list(columns)
        names = list(columns.values())
        npi_at = names.index(columns["npi"])
        parts, rows = [], 0
        for batch in _stream(path, names):
            rows += batch.num_rows
            mask = wanted.mask(batch.column(npi_at))
            if pc.any(mask).as_py():
                parts.append(batch.filter(mask))
        stats.rows_read[path.name] = rows
        self.index: dict[str, tuple[int, int]] = {}
        self.table: pa.Table | None = None
        if not parts:
            return
        table = pa.Table.from_batches(parts).rename_columns(self.fields)
        self.table = table.take(pc.sort_indices(table, sort_keys=[("npi", "ascending")]))  # a stable sort
        npis = self.table.column("npi").to_pylist()
        start = 0
        for i in range(1, len(npis) + 1):
            if i == len(npis) or npis[i] != npis[start]:
                self.index[npis[start]] = (start, i)
                start = i

    def entries(self, npis: list[str]) -> dict[str, list[dict]]:
        """npi -> API-shaped entries, for the given NPIs that have any."""
        if not self.index:
            return {}
        take: list[int] = []
        for npi in npis:
            span = self.index.get(npi)
            if span:
                take.extend(range(*span))
        if not take:
            return {}
        assert self.table is not None
        rows = self.table.take(pa.array(take, type=pa.int64()))
        out: dict[str, list[dict]] = {}
        for values in zip(*(rows.column(f).to_pylist() for f in self.fields), strict=True):
            r = dict(zip(self.fields, values, strict=True))
            out.setdefault(r["npi"], []).append(_side_entry(self.kind, r))
        return out


def _side_entry(kind: str, r: dict[str, str]) -> dict[str, Any]:
    if kind == "othername":
        entry = {"organization_name": r["name"], "code": r["code"]}
        entry["type"] = OTHER_NAME_TYPES.get(r["code"], "Other Name")
        return entry
    if kind == "pl":
        return _address(r["line1"], r.get("line2", ""), r["city"], r["state"], r["postal"], r.get("country", ""),
                        r.get("phone", ""), r.get("fax", ""), None, r.get("extension", ""))
    entry = {k: v for k, v in r.items() if k != "npi" and v != ""}
    country = entry.get("country_code") or "US"
    entry["country_code"] = country
    entry.setdefault("address_type", "DOM" if country == "US" else "FGN")
    if country in COUNTRY_NAMES:
        entry.setdefault("country_name", COUNTRY_NAMES[country])
    return entry


# ---------------------------------------------------------------------------------------------- rows -> results


_DATE_RE, _DATE_TO = r"^(\d\d)/(\d\d)/(\d{4})$", r"\3-\1-\2"
_PHONE_RE, _PHONE_TO = r"^(\d{3})(\d{3})(\d{4})$", r"\1-\2-\3"
DATE_COLUMNS = frozenset(("Provider Enumeration Date", "Last Update Date", "Certification Date"))
PHONE_COLUMNS = frozenset((ADDRESS_COLUMNS["LOCATION"]["phone"], ADDRESS_COLUMNS["LOCATION"]["fax"],
                           ADDRESS_COLUMNS["MAILING"]["phone"], ADDRESS_COLUMNS["MAILING"]["fax"],
                           "Authorized Official Telephone Number"))


class _Block:
    """The filtered rows of one block as Python lists: dates and phone numbers already in the API's
    spelling (converted by Arrow, not row by row), all-empty columns shared as one list of ""."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.n = batch.num_rows
        self.empty: list[str] = [""] * self.n
        self.cols: dict[str, list[str]] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if not _nonempty(column):
                continue
            if name in DATE_COLUMNS:
                column = pc.replace_substring_regex(column, pattern=_DATE_RE, replacement=_DATE_TO)
            elif name in PHONE_COLUMNS:
                column = pc.replace_substring_regex(column, pattern=_PHONE_RE, replacement=_PHONE_TO)
            self.cols[name] = column.to_pylist()

    def get(self, name: str | None) -> list[str]:
        return self.cols.get(name, self.empty) if name else self.empty

    def has(self, name: str) -> bool:
        return name in self.cols

    def slots(self, columns: Iterable[tuple[str, ...]]) -> list[tuple[list[str], ...]]:
        """The slots (taxonomy 1..15, identifier 1..50) whose first column has a value in some row."""
        return [tuple(self.get(c) for c in cols) for cols in columns if self.has(cols[0])]


TAXONOMY_COLUMNS = tuple(_taxonomy_columns(i) for i in range(1, TAXONOMY_SLOTS + 1))
IDENTIFIER_COLUMNS = tuple(_identifier_columns(i) for i in range(1, IDENTIFIER_SLOTS + 1))
_ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal", "country", "phone", "fax")


def _deactivated(deact: str, react: str) -> bool:
    return bool(deact) and not (react and iso_date(react) >= iso_date(deact))


def _results(block: _Block, sides: Mapping[str, Mapping[str, list[dict]]],
             taxonomy_desc: Mapping[str, str] | None) -> Iterator[tuple[str, dict, bool]]:
    """(npi, API-shaped result, deactivated) for every row of the block."""
    g = block.get
    npis, entity = g("NPI"), g("Entity Type Code")
    deact, react = g("NPI Deactivation Date"), g("NPI Reactivation Date")
    enum_date, last_update, cert = g("Provider Enumeration Date"), g("Last Update Date"), g("Certification Date")
    sole, subpart = g("Is Sole Proprietor"), g("Is Organization Subpart")
    official_phone = g("Authorized Official Telephone Number")
    sex = g(next((c for c in SEX_COLUMNS if block.has(c)), None))
    individual = [(key, g(col)) for key, col in INDIVIDUAL_BASIC if block.has(col)]
    organization = [(key, g(col)) for key, col in ORGANIZATION_BASIC if block.has(col)]
    other_person = [(key, g(col)) for key, col in OTHER_PERSON_NAME if block.has(col)]
    other_person_type = g("Provider Other Last Name Type Code")
    other_org, other_org_code = g("Provider Other Organization Name"), g("Provider Other Organization Name Type Code")
    addresses_cols = [(purpose, *(g(cols[f]) for f in _ADDRESS_FIELDS)) for purpose, cols in ADDRESS_COLUMNS.items()]
    taxonomy_slots = block.slots(TAXONOMY_COLUMNS)
    identifier_slots = block.slots(IDENTIFIER_COLUMNS)
    othername, pl, endpoint = sides.get("othername", {}), sides.get("pl", {}), sides.get("endpoint", {})
    taxonomy_desc = taxonomy_desc or {}
    identifier_types = IDENTIFIER_TYPES
    name_types = OTHER_NAME_TYPES
    yes_no = YES_NO

    for i in range(block.n):
        npi = npis[i]
        etype = entity[i]
        if deact[i] and _deactivated(deact[i], react[i]):
            yield npi, {
                "enumeration_type": f"NPI-{etype}" if etype else None, "number": npi,
                "addresses": [], "practiceLocations": [],
                "basic": {"status": "D", "deactivation_date": iso_date(deact[i])},
                "taxonomies": [], "identifiers": [], "endpoints": [], "other_names": [],
            }, True
            continue

        if etype == "2":
            basic = {key: values[i] for key, values in organization if values[i]}
            if official_phone[i]:
                basic["authorized_official_telephone_number"] = official_phone[i]
            if subpart[i] in yes_no:
                basic["organizational_subpart"] = yes_no[subpart[i]]
        else:
            basic = {key: values[i] for key, values in individual if values[i]}
            if sole[i] in yes_no:
                basic["sole_proprietor"] = yes_no[sole[i]]
            if sex[i]:
                basic["sex"] = sex[i]
        if enum_date[i]:
            basic["enumeration_date"] = enum_date[i]
        if last_update[i]:
            basic["last_updated"] = last_update[i]
        if cert[i]:
            basic["certification_date"] = cert[i]
        basic["status"] = "A"

        addresses = []
        for purpose, line1, line2, city, state, postal, country, phone, fax in addresses_cols:
            if line1[i] or city[i] or postal[i]:
                cc = country[i] or "US"
                if cc == "US":
                    a = {"country_code": "US", "country_name": "United States", "address_type": "DOM"}
                else:
                    a = {"country_code": cc, "address_type": "FGN"}
                    if cc in COUNTRY_NAMES:
                        a["country_name"] = COUNTRY_NAMES[cc]
                a["address_1"] = line1[i]
                a["address_2"] = line2[i]
                a["city"] = city[i]
                a["state"] = state[i]
                a["postal_code"] = postal[i]
                if phone[i]:
                    a["telephone_number"] = phone[i]
                a["address_purpose"] = purpose
                if fax[i]:
                    a["fax_number"] = fax[i]
                addresses.append(a)

        taxonomies = []
        for code, lic, state, switch, group in taxonomy_slots:
            c = code[i]
            if c:
                if c in taxonomy_desc:
                    taxonomies.append({"code": c, "taxonomy_group": group[i], "desc": taxonomy_desc[c],
                                       "state": state[i], "license": lic[i] or None, "primary": switch[i] == "Y"})
                else:
                    taxonomies.append({"code": c, "taxonomy_group": group[i], "state": state[i],
                                       "license": lic[i] or None, "primary": switch[i] == "Y"})

        identifiers = []
        for ident, code, state, issuer in identifier_slots:
            if ident[i]:
                identifiers.append({"code": code[i], "desc": identifier_types.get(code[i], "Other"),
                                    "issuer": issuer[i], "identifier": ident[i], "state": state[i]})

        other_names = []
        if other_person:
            person = {key: values[i] for key, values in other_person if values[i]}
            if person:
                code = other_person_type[i]
                other_names.append({"type": name_types.get(code, "Other Name"), "code": code, **person})
        side_names = othername.get(npi)
        if side_names:
            other_names.extend(side_names)
        elif other_org[i]:
            code = other_org_code[i]
            other_names.append({"organization_name": other_org[i], "code": code,
                                "type": name_types.get(code, "Other Name")})

        yield npi, {
            "enumeration_type": f"NPI-{etype}" if etype else None, "number": npi, "addresses": addresses,
            "practiceLocations": pl.get(npi, []), "basic": basic, "taxonomies": taxonomies,
            "identifiers": identifiers, "endpoints": endpoint.get(npi, []), "other_names": other_names,
        }, False


# ---------------------------------------------------------------------------------------------- preload


@dataclass
class PreloadStats:
    rows_read: dict[str, int] = field(default_factory=dict)  # file name -> data rows (main and side files)
    wanted: int = 0  # size of the wanted set
    wanted_found: int = 0  # cache rows written (one per wanted NPI found in bulk)
    replaced_by_weekly: int = 0  # wanted NPIs whose monthly/earlier weekly row a newer weekly row replaced
    deactivated: int = 0  # of wanted_found: deactivated in bulk
    batches: int = 0
    seconds: float = 0.0
    reader: str = ""  # thread | process
    # where the time went: waiting for parsed CSV blocks, building results (incl. filtering), the
    # writer thread's upserts (overlapping the others), and waiting for the writer (backpressure)
    read_seconds: float = 0.0
    build_seconds: float = 0.0
    write_seconds: float = 0.0
    write_wait_seconds: float = 0.0
    files: list[str] = field(default_factory=list)  # main files in processing order


class _Writer:
    """Upserts batches on threads of their own, one per connection (each connection is used by its
    thread alone meanwhile): PostgreSQL works on one batch while the next is built, and with two
    connections one batch is being COPYed while the other's INSERT runs. Each NPI is in one batch
    only (see `_superseded`), so the order in which batches land does not matter."""

    def __init__(self, conns: list[psycopg.Connection]) -> None:
        self.queue: queue.Queue[list[CacheRow] | None] = queue.Queue(maxsize=1)  # memory: one waits
        self.error: BaseException | None = None
        self.closed = False
        self.busy = 0.0  # thread-seconds spent in upserts
        self.waited = 0.0  # seconds the building thread waited for a free slot
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(c,), name=f"nppes-bulk-writer-{i}", daemon=True)
                        for i, c in enumerate(conns)]
        for t in self.threads:
            t.start()

    def _run(self, conn: psycopg.Connection) -> None:
        while True:
            rows = self.queue.get()
            if rows is None:
                return
            if self.error is None:
                t0 = time.perf_counter()
                try:
                    cache.upsert(conn, "npi", rows)
                except BaseException as exc:  # handed to the building thread
                    self.error = exc
                with self.lock:
                    self.busy += time.perf_counter() - t0

    def put(self, rows: list[CacheRow]) -> None:
        self._raise()
        t0 = time.perf_counter()
        self.queue.put(rows)
        self.waited += time.perf_counter() - t0

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self, *, check: bool = True) -> None:
        if not self.closed:
            self.closed = True
            for _ in self.threads:
                self.queue.put(None)
            for t in self.threads:
                t.join()
        if check:
            self._raise()


def _sibling_connections(conn: psycopg.Connection, n: int) -> list[psycopg.Connection]:
    """Up to `n` more connections like `conn` (same DSN and password); fewer if connecting fails."""
    out: list[psycopg.Connection] = []
    for _ in range(n):
        try:
            out.append(psycopg.connect(conn.info.dsn, password=conn.info.password or None))
        except Exception as exc:  # one writer still works
            log.warning("an extra writer connection failed (%s); writing with %d", exc, len(out) + 1)
            break
    return out


def wanted_npis(conn: psycopg.Connection) -> pa.Array:
    """The Luhn-valid NPIs of maps.npi_wanted (invalid ones can be in no NPPES file), as an Arrow array
    (COPY straight into Arrow: no Python string per NPI)."""
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy("COPY (SELECT npi FROM maps.npi_wanted WHERE luhn_valid) TO STDOUT") as copy:
        for data in copy:
            buf.write(data)
    conn.commit()
    if buf.tell() == 0:
        return pa.array([], type=pa.string())
    buf.seek(0)
    table = pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=["npi"]),
                           parse_options=pacsv.ParseOptions(quote_char=False, delimiter="\t"),
                           convert_options=pacsv.ConvertOptions(column_types={"npi": pa.string()},
                                                                strings_can_be_null=False))
    return table.column(0).combine_chunks()


def _as_npi_set(wanted: Iterable[str] | pa.Array | pa.ChunkedArray | NpiSet) -> NpiSet:
    if isinstance(wanted, NpiSet):
        return wanted
    if isinstance(wanted, pa.ChunkedArray):
        wanted = wanted.combine_chunks()
    if not isinstance(wanted, pa.Array):
        wanted = pa.array([str(n) for n in wanted], type=pa.string())
    return NpiSet(wanted)


def _superseded(files: BulkFiles, wanted: NpiSet) -> list[NpiSet]:
    """For each bundle in processing order, the wanted NPIs a later weekly file has (skipped there)."""
    last: dict[str, int] = {}
    for k, bundle in enumerate(files.bundles):
        if k == 0:
            continue
        for batch in _stream(bundle.main, ["NPI"]):
            npis = batch.column(0)
            for npi in npis.filter(wanted.mask(npis)).to_pylist():
                last[npi] = k
    return [NpiSet(pa.array([npi for npi, j in last.items() if j > k], type=pa.string()))
            for k in range(len(files.bundles))]


# ---------------------------------------------------------------------------------------------- filtered blocks
#
# The main files become a stream of events, in file order:
#   ("start", k)                                    file k begins
#   ("batch", k, rows_read, filtered | None, [npi])  one block: its wanted rows (minus those a later
#                                                   weekly has) and the wanted NPIs skipped for that
#   ("end", k, rows_read_total)
# produced in this process (reader="thread") or in a reader process (reader="process") that parses
# and filters on a core of its own and hands over only the wanted rows as Arrow IPC.


def _filtered(jobs: list[tuple[str, list[str]]], wanted: NpiSet, skips: list[NpiSet], block_size: int,
              depth: int = 3) -> Iterator[tuple]:
    for k, (path, columns) in enumerate(jobs):
        yield ("start", k)
        skip, total = skips[k], 0
        for batch in _prefetch(_stream(Path(path), columns, block_size=block_size), depth):
            total += batch.num_rows
            npi = batch.column(0)
            mask = wanted.mask(npi)
            replaced: list[str] = []
            if len(skip):
                later = pc.and_(mask, skip.mask(npi))
                if pc.any(later).as_py():
                    replaced = npi.filter(later).to_pylist()
                    mask = pc.and_(mask, pc.invert(later))
            yield ("batch", k, batch.num_rows, batch.filter(mask) if pc.any(mask).as_py() else None, replaced)
        yield ("end", k, total)


_FRAME = struct.Struct("<cIQQ")  # type, file index, rows, payload length


def _reader_main() -> None:
    """The reader process: job (pickled) on stdin, framed events on stdout."""
    job = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    schemas: set[int] = set()

    def frame(kind: bytes, k: int, rows: int, payload: bytes | pa.Buffer = b"") -> None:
        out.write(_FRAME.pack(kind, k, rows, len(payload)))
        if len(payload):
            out.write(payload)

    try:
        for event in _filtered(job["jobs"], job["wanted"], job["skips"], job["block_size"]):
            if event[0] == "start":
                frame(b"s", event[1], 0)
            elif event[0] == "end":
                frame(b"e", event[1], event[2])
            else:
                _kind, k, rows, batch, replaced = event
                if replaced:
                    frame(b"r", k, 0, "\n".join(replaced).encode())
                if batch is not None and k not in schemas:
                    frame(b"h", k, 0, batch.schema.serialize())
                    schemas.add(k)
                frame(b"b", k, rows, batch.serialize() if batch is not None else b"")
        frame(b"d", 0, 0)
    except NppesBulkError as exc:
        frame(b"x", 0, 0, pickle.dumps((exc.message, exc.source, exc.line)))
    except BaseException as exc:  # reported to the parent, which raises it
        frame(b"x", 0, 0, pickle.dumps((f"reader process failed: {exc!r}", None, None)))
    out.flush()


def _filtered_in_process(jobs: list[tuple[str, list[str]]], wanted: NpiSet, skips: list[NpiSet],
                         block_size: int) -> Iterator[tuple]:
    """`_filtered` run by a child Python (a plain subprocess: works inside daemonic workers too)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-c", "from include.maps.nppes_bulk import _reader_main; _reader_main()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        pickle.dump({"jobs": jobs, "wanted": wanted, "skips": skips, "block_size": block_size}, proc.stdin,
                    protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.close()
        pipe = proc.stdout
        schemas: dict[int, pa.Schema] = {}
        replaced: list[str] = []
        while True:
            head = pipe.read(_FRAME.size)
            if len(head) < _FRAME.size:
                raise NppesBulkError(f"the reader process ended unexpectedly (exit code {proc.wait()})",
                                     source=jobs[0][0])
            kind, k, rows, size = _FRAME.unpack(head)
            payload = pipe.read(size) if size else b""
            if kind == b"b":
                batch = pa.ipc.read_record_batch(pa.py_buffer(payload), schemas[k]) if size else None
                yield ("batch", k, rows, batch, replaced)
                replaced = []
            elif kind == b"r":
                replaced = payload.decode().split("\n")
            elif kind == b"h":
                schemas[k] = pa.ipc.read_schema(pa.py_buffer(payload))
            elif kind == b"s":
                yield ("start", k)
            elif kind == b"e":
                yield ("end", k, rows)
            elif kind == b"d":
                return
            else:  # b"x"
                message, source, line = pickle.loads(payload)
                raise NppesBulkError(message, source=source, line=line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def preload(conn: psycopg.Connection, files: BulkFiles, *,
            wanted: Iterable[str] | pa.Array | NpiSet | None = None,
            batch_rows: int = DEFAULT_BATCH_ROWS, api_run_id: str | None = None,
            taxonomy_descriptions: Mapping[str, str] | None = None,
            block_size: int = BLOCK_SIZE, reader: str = "auto", writers: int = 2) -> PreloadStats:
    """Write a `found`/`bulk` cache row for every wanted NPI in the bulk files (newest row wins).

    `wanted`: the NPIs to keep (default: the Luhn-valid NPIs of maps.npi_wanted). Rows go to the cache
    in batches of `batch_rows`, each committed; on an error the batches already written stay (they are
    correct rows) and the error names the file and line. `reader`: "process" parses and filters the
    CSVs in a child process (a core of its own: the build and the writer here are bound to one core by
    the GIL), "thread" in this process; "auto" takes the process when the main files exceed
    PROCESS_READER_BYTES. `writers`: connections writing batches at the same time (the extra ones are
    opened like `conn`; committed batches are independent, so this changes nothing but speed)."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    if writers < 1:
        raise ValueError(f"writers must be at least 1, got {writers}")
    if reader not in ("auto", "thread", "process"):
        raise ValueError(f"reader must be auto, thread or process, got {reader!r}")
    started = time.perf_counter()
    stats = PreloadStats(files=[b.name for b in files.bundles])
    # Check every header before anything is written.
    projections = [_main_projection(b.main) for b in files.bundles]
    for b in files.bundles:
        for kind in SIDE_KINDS:
            path = getattr(b, kind)
            if path is not None:
                _side_projection(path, kind)

    wanted_set = _as_npi_set(wanted_npis(conn) if wanted is None else wanted)
    stats.wanted = len(wanted_set)
    if len(wanted_set) == 0:
        stats.seconds = time.perf_counter() - started
        return stats
    superseded = _superseded(files, wanted_set)
    replaced: set[str] = set()
    jobs = [(str(b.main), columns) for b, columns in zip(files.bundles, projections, strict=True)]
    if reader == "auto":
        reader = "process" if sum(b.main.stat().st_size for b in files.bundles) > PROCESS_READER_BYTES else "thread"
    stats.reader = reader
    if reader == "process":
        events = _prefetch(_filtered_in_process(jobs, wanted_set, superseded, block_size), depth=16)
    else:
        events = _filtered(jobs, wanted_set, superseded, block_size)

    # The results are trees of small dicts/lists without cycles; with the cyclic GC on, its full
    # collections walk every live batch again and again (3-4x the build time). Off while building.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    # Three threads share the GIL here; a writer back from PostgreSQL should not wait the default 5 ms.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, 0.0005))
    extra = _sibling_connections(conn, writers - 1) if writers > 1 else []
    writer = _Writer([conn, *extra])
    try:
        pending: list[CacheRow] = []
        sides: dict[str, _Side] = {}
        bundle, params = files.monthly, {}
        loop_started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            event = next(events, None)
            stats.read_seconds += time.perf_counter() - t0
            if event is None:
                break
            if event[0] == "start":
                bundle = files.bundles[event[1]]
                params = {"source_file": bundle.name}
                sides = {}  # the previous bundle's side rows go first
                sides = {kind: _Side(getattr(bundle, kind), kind, wanted_set, stats)
                         for kind in SIDE_KINDS if getattr(bundle, kind) is not None}
                continue
            if event[0] == "end":
                stats.rows_read[bundle.name] = event[2]
                log.info("%s: %s rows read; %s wanted NPIs found so far", bundle.main, f"{event[2]:,}",
                         f"{stats.wanted_found:,}")
                continue
            _kind, _k, _rows, batch, skipped = event
            replaced.update(skipped)
            if batch is None:
                continue
            block = _Block(batch)
            npis = block.get("NPI")
            block_sides = {kind: side.entries(npis) for kind, side in sides.items()}
            for npi, result, deactivated in _results(block, block_sides, taxonomy_descriptions):
                pending.append(CacheRow(npi, "found", "bulk", url=None, request_params=params,
                                        api_run_id=api_run_id,
                                        response_json={"result_count": 1, "results": [result],
                                                       "source": SOURCE_TAG, "file": bundle.name}))
                stats.wanted_found += 1
                stats.deactivated += deactivated
                if len(pending) >= batch_rows:
                    writer.put(pending)
                    stats.batches += 1
                    pending = []
        stats.build_seconds = time.perf_counter() - loop_started
        if pending:
            writer.put(pending)
            stats.batches += 1
        t0 = time.perf_counter()
        writer.close()
        writer.waited += time.perf_counter() - t0
    finally:
        events.close()  # stops the reader (thread or process) on an error
        writer.close(check=False)  # on an error: the batches handed over are still written, then it stops
        for c in extra:
            c.close()
        sys.setswitchinterval(switch_interval)
        if gc_was_enabled:
            gc.enable()
    stats.write_seconds, stats.write_wait_seconds = writer.busy, writer.waited
    stats.build_seconds -= stats.read_seconds + stats.write_wait_seconds
    stats.replaced_by_weekly = len(replaced)
    stats.seconds = time.perf_counter() - started
    return stats


# ---------------------------------------------------------------------------------------------- provider facts

FACT_COLUMNS: tuple[str, ...] = (
    "NPI", "Entity Type Code", "Provider Organization Name (Legal Business Name)", "Provider Last Name (Legal Name)",
    "Provider First Name", "Provider Credential Text", f"Provider {_PRACTICE} State Name",
    f"Provider {_PRACTICE} Postal Code", "Provider Enumeration Date", "NPI Deactivation Date", "NPI Reactivation Date",
    *(f"Healthcare Provider Taxonomy Code_{i}" for i in range(1, TAXONOMY_SLOTS + 1)),
    *(f"Healthcare Provider Primary Taxonomy Switch_{i}" for i in range(1, TAXONOMY_SLOTS + 1)),
)


def provider_facts(files: BulkFiles, wanted: Iterable[str] | pa.Array | NpiSet, *,
                   block_size: int = BLOCK_SIZE) -> Iterator[pa.RecordBatch]:
    """The FACT_COLUMNS (those the files have; all strings) of the wanted NPIs, each NPI once, from the
    newest bundle that has it (the same precedence as `preload`): for joins that need a few facts of
    millions of NPIs (Hop Teaming), without building API payloads."""
    wanted_set = _as_npi_set(wanted)
    if len(wanted_set) == 0:
        return
    jobs = []
    for b in files.bundles:
        header = set(read_header(b.main))
        missing = [c for c in ("NPI", "Entity Type Code") if c not in header]
        if missing:
            raise NppesBulkError(f"missing column(s) {', '.join(missing)}", source=str(b.main))
        jobs.append((str(b.main), [c for c in FACT_COLUMNS if c in header]))
    for event in _filtered(jobs, wanted_set, _superseded(files, wanted_set), block_size):
        if event[0] == "batch" and event[3] is not None:
            yield event[3]
