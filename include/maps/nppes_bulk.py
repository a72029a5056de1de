"""NPPES bulk preload: resolve the wanted NPIs from the local NPPES files before any API call.

The download code leaves the bundles extracted under `raw/nppes/monthly/<bundle>/` and
`raw/nppes/weekly/<bundle>/` (include/download/sources.py). `find_bulk_files` picks the newest
monthly `npidata_pfile_YYYYMMDD-YYYYMMDD.csv` with its side members (`othername_pfile_…`,
`pl_pfile_…`, `endpoint_pfile_…`) and the weekly bundles whose period ends after the monthly cut,
oldest first. `preload` streams them and writes one `found`/`bulk` cache row per wanted NPI:

    files = find_bulk_files(data_root / "raw" / "nppes")
    stats = preload(conn, files)                 # wanted = maps.npi_wanted (Luhn-valid ones)

How it stays fast and flat at 9M rows x 330 columns:
- the main CSVs are read by pyarrow in two steps, piece by piece (4 MB, cut at line ends): every
  row's NPI column only (the tokenizer still checks every row's shape; the bytes are checked to be
  UTF-8), then, for the lines of wanted NPIs only, the columns the API shape needs (326 of 330; all
  as strings, so leading zeros stay): converting all columns of every row is most of a plain read's
  time, and 4 rows in 5 would be thrown away. Wanted NPIs are found with `NpiSet` (sorted int64 +
  numpy searchsorted; `pc.is_in` would hash the 1.8M wanted NPIs again for every block). For big
  files (`reader="auto"`) this runs in a reader process (started first, so that its start-up overlaps
  the work before the first block) with PARSE_THREADS threads taking CHUNK_BYTES byte ranges in turn,
  and hands over only the wanted rows, of those only the columns with a value, as Arrow IPC;
- no Python object is made per row or value: the cache rows' JSON is built as text by Arrow kernels,
  column-wise over `batch_rows` kept rows at a time (see "JSON, column-wise" below); the side files
  are streamed and filtered to the wanted NPIs and their entries become JSON text per NPI, found for
  a batch by a sorted-int64 lookup;
- the batches go out on writer threads (two connections by default) through `cache.upsert_json`,
  whose COPY data Arrow makes too, straight into the cache table (no staging table), so PostgreSQL
  parses one batch's JSON while the next is built.
Memory: the wanted set (8 bytes an NPI), the side entries of wanted NPIs of one bundle as JSON text,
up to PREFETCH_BLOCKS filtered blocks, a few pieces per reader thread, one batch being built, one
waiting and one per writer.

Weekly precedence: a weekly row replaces the monthly row and later weeklies replace earlier ones. The
weekly main files are scanned (NPI column only) first, so each NPI is written once, from the newest
file that has it: a killed run never leaves an outdated monthly row behind a newer weekly one, and
batches may land in any order. (The outcome equals processing monthly then weeklies with later
upserts winning.) Side rows come from the bundle the main row comes from.

Errors (`NppesBulkError`, naming the file and, for a malformed row, the line): a missing required
column of any main or side file is found before anything is written; a malformed row (wrong number
of fields, text that is not UTF-8, in any row, wanted or not) stops the run where it is met (the
batches already upserted stay: they are correct rows; nothing marks the preload complete, that is
the caller's step).

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
- `sex` is the Provider Sex Code, or where a file has both and it is empty, the (older) Provider
  Gender Code;
- `wanted` strings that are no NPI (ten digits, the first not 0), e.g. "UNKNOWN", are not looked for.
"""

from __future__ import annotations

import contextlib
import csv
import json
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
from collections.abc import Callable, Iterable, Iterator, Mapping
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

log = logging.getLogger("claimsflow.maps.nppes_bulk")

BLOCK_SIZE = 4 << 20  # bytes of CSV per pyarrow block (larger ones cost RSS, not speed)
DEFAULT_BATCH_ROWS = 10_000
PROCESS_READER_BYTES = 256 << 20  # main files larger than this are parsed in a reader process
CHUNK_BYTES = 128 << 20  # a reader process parses a main file larger than this in chunks of this size,
PARSE_THREADS = min(2, os.cpu_count() or 1)  # on this many threads (RSS: each has its own blocks in flight)
PREFETCH_BLOCKS = 64  # filtered blocks a reader process may be ahead (~1 MB each at 4 MB blocks, 1 in 5 rows kept)
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


def _open(source: Path, columns: list[str], *, block_size: int, threads: bool, skip: int = 0,
          on_invalid=None) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(block_size=block_size, use_threads=threads, skip_rows_after_names=skip),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(include_columns=columns, column_types={c: pa.string() for c in columns},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


Span = tuple[int, int]  # a byte range [start, stop) of a file, cut at line ends


def _spans(path: Path, chunk_bytes: int) -> list[Span]:
    """`path` cut into byte ranges of about `chunk_bytes` at line ends (a row is one line:
    newlines_in_values is off); the first range begins with the header line."""
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.readline()
        cuts = [0]
        while (target := max(cuts[-1] + chunk_bytes, len(header))) < size:
            f.seek(target)
            f.readline()  # to the end of the line the cut fell in
            if f.tell() >= size:
                break
            cuts.append(f.tell())
    cuts.append(size)
    return list(zip(cuts, cuts[1:], strict=False))


def _lines_before(path: Path, offset: int) -> int:
    """How many lines end before byte `offset` (the line numbers of errors, on that path only)."""
    lines = 0
    with path.open("rb") as f:
        while offset > 0:
            chunk = f.read(min(offset, 16 << 20))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            offset -= len(chunk)
    return lines


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


def _malformed(path: Path, exc: Exception, line: int | None) -> NppesBulkError:
    detail = re.sub(r"^Row #\d+: ", "", str(exc).removeprefix("CSV parse error: "))
    return NppesBulkError(f"malformed row: {detail[:300]}", source=str(path), line=line)


def _stream(path: Path, columns: list[str], *, block_size: int = BLOCK_SIZE) -> Iterator[pa.RecordBatch]:
    """The projected columns of a CSV, all strings, block by block (parsed ahead on Arrow's threads);
    a malformed row raises NppesBulkError naming the file and the line."""
    rows_ok = 0
    try:
        for batch in _open(path, columns, block_size=block_size, threads=True):
            rows_ok += batch.num_rows
            yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        line = _row_number(str(exc)) or _locate_error(path, columns[0], rows_ok, block_size)
        raise _malformed(path, exc, line) from exc
    except OSError as exc:
        raise NppesBulkError(f"cannot read: {exc}", source=str(path)) from exc


# Two steps for the main files in preload: each piece of the file (`block_size` bytes, cut at a line
# end) is parsed once for its NPI column only (the tokenizer still checks every row's shape) and only
# the lines of wanted NPIs are parsed again for all projected columns: converting 326 columns of
# every row to strings is most of a plain read's time, and 4 rows in 5 would be thrown away.


def _newline_ended(path: Path) -> bool:
    """Do the file's lines end with \\n (LF or CRLF)? Only then can pieces be cut at line ends."""
    with path.open("rb") as f:
        return f.readline(1 << 20).endswith(b"\n")


def _pieces(path: Path, start: int, stop: int, piece_bytes: int) -> Iterator[tuple[memoryview, int]]:
    """(piece, its offset in the file): bytes [start, stop) of `path` in pieces of about `piece_bytes`
    that end at line ends; a range that begins the file goes without its header line."""
    with path.open("rb", buffering=0) as f:
        f.seek(start)
        if start == 0:
            start = len(f.readline())
        left, rest, offset = stop - start, b"", start
        while left > 0 or rest:
            buf = bytearray(len(rest) + min(piece_bytes, max(left, 0)))
            buf[:len(rest)] = rest
            got = f.readinto(memoryview(buf)[len(rest):]) if left > 0 else 0
            left = left - got if got else 0  # (a file cut short ends here)
            end = len(rest) + got
            cut = buf.rfind(b"\n", 0, end) + 1 if left > 0 else end
            if cut == 0:  # no line end yet: a longer line, read on
                if end > 64 * max(piece_bytes, 1 << 20):
                    raise NppesBulkError("a line longer than 64 blocks (is it a CSV with line ends?)",
                                         source=str(path), line=None)
                rest = bytes(buf[:end])
                continue
            rest = bytes(buf[cut:end])
            yield memoryview(buf)[:cut], offset
            offset += cut


def _prefiltered(path: Path, names: list[str], columns: list[str], span: Span, block_size: int,
                 wanted: NpiSet) -> Iterator[tuple[int, pa.RecordBatch | None]]:
    """(rows, the projected columns of the rows of wanted NPIs or None) for the pieces of a byte range
    (see above); a malformed row raises NppesBulkError naming the file and the line."""
    start, stop = span

    def options(include: list[str]) -> dict[str, Any]:
        return {"read_options": pacsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 30),
                "parse_options": pacsv.ParseOptions(newlines_in_values=False),
                "convert_options": pacsv.ConvertOptions(include_columns=include,
                                                        column_types={c: pa.string() for c in include},
                                                        strings_can_be_null=False,
                                                        quoted_strings_can_be_null=False)}

    npi_only, projected = options(columns[:1]), options(columns)
    for piece, offset in _pieces(path, start, stop, block_size):
        at = None  # the piece's line of each line parsed in the second step
        try:
            _check_utf8(piece)
            npis = pacsv.read_csv(pa.py_buffer(piece), **npi_only).column(0).combine_chunks()
            mask = wanted.mask(npis)
            if not _any(mask):
                yield len(npis), None
                continue
            ends = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 0x0A) + 1
            if len(ends) != len(npis):  # empty lines or lone CR line ends: the piece is parsed whole
                kept = _table_batch(pacsv.read_csv(pa.py_buffer(piece), **projected))
                yield len(npis), kept.filter(wanted.mask(kept.column(0)))
                continue
            starts = np.r_[0, ends[:-1]]
            at = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            wanted_lines = b"".join([piece[starts[i]:ends[i]] for i in at])
            yield len(npis), _table_batch(pacsv.read_csv(pa.py_buffer(wanted_lines), **projected))
        except (pa.ArrowInvalid, pa.ArrowTypeError, _NotUtf8) as exc:
            row = exc.row if isinstance(exc, _NotUtf8) else _row_number(str(exc))
            if row is not None and at is not None:
                row = int(at[row - 1]) + 1
            raise _malformed(path, exc, None if row is None else _lines_before(path, offset) + row) from exc
        except OSError as exc:
            raise NppesBulkError(f"cannot read: {exc}", source=str(path)) from exc


class _NotUtf8(ValueError):
    def __init__(self, row: int) -> None:
        super().__init__("a value is not UTF-8 text")
        self.row = row  # the piece's line (1 = its first)


def _check_utf8(piece: memoryview) -> None:
    """Raise _NotUtf8 for a piece that is not UTF-8 throughout (Arrow validates it without a copy)."""
    offsets = pa.py_buffer(np.array([0, piece.nbytes], dtype=np.int32))
    try:
        pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(piece)]).cast(pa.string())
    except pa.ArrowInvalid:
        for i, line in enumerate(bytes(piece).split(b"\n")):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                raise _NotUtf8(i + 1) from None
        raise


def _table_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.to_batches()
    if len(batches) == 1:
        return batches[0]
    return pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], names=table.column_names)


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


def _prefetch(*sources: Iterator[Any], depth: int = 3) -> Iterator[Any]:
    """Iterate the sources, each on a thread of its own, up to `depth` items ahead: pyarrow's streaming
    reader parses a block when asked for it, and parsing releases the GIL, so the next blocks are
    parsed on other cores while this thread turns the current one into results. With several sources
    (chunks of one file) their items come in the order they are ready. An error surfaces here,
    after the items its source yielded before it."""
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

    def run(items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer
            put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # e.g. stops a reader process

    threads = [threading.Thread(target=run, args=(items,), name=f"nppes-bulk-reader-{i}", daemon=True)
               for i, items in enumerate(sources)]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            item = q.get()
            if item is _DONE:
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join()


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


# ---------------------------------------------------------------------------------------------- JSON, column-wise
#
# The cache rows' JSON is written as text by Arrow kernels over a whole batch of kept rows at a time:
# a member is a column of `,"key":value` fragments (null in the rows where the API leaves it out), an
# object the element-wise concatenation of its members, an array the join of its elements, each
# built for the rows that have it. No Python object is made per row or value. PostgreSQL stores the
# text as jsonb, so only its meaning counts (member order and the spelling of escapes do not): the
# same values as the row-by-row dicts json.dumps would write.

_ESCAPE_RE = r'["\\\x00-\x1f]'
_CONTROL_RE = r"[\x00-\x1f]"
_SHORT_ESCAPES = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _needs_escape(column: pa.Array) -> bool:
    """Has any value a quote, a backslash or a control character? (A scan of the data bytes: in UTF-8
    those bytes stand for nothing else.)"""
    if column.type != pa.string():
        return _any(pc.match_substring_regex(column, _ESCAPE_RE))
    n = len(column)
    if n == 0:
        return False
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    start, stop = offsets[column.offset], offsets[column.offset + n]
    if start == stop:
        return False
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[start:stop]
    return bool(((data < 0x20) | (data == 0x22) | (data == 0x5C)).any())


def _escaped(column: pa.Array) -> pa.Array:
    """The values as the inside of JSON strings: quotes, backslashes and control characters escaped,
    everything else as it is (what json.dumps(..., ensure_ascii=False) writes)."""
    if not _needs_escape(column):
        return column
    column = pc.replace_substring(column, "\\", "\\\\")
    column = pc.replace_substring(column, '"', '\\"')
    if _any(pc.match_substring_regex(column, _CONTROL_RE)):
        for code in range(32):
            column = pc.replace_substring(column, chr(code), _SHORT_ESCAPES.get(code, f"\\u{code:04x}"))
    return column


def _jstr(column: pa.Array) -> pa.Array:
    """JSON string literals of the values."""
    return pc.binary_join_element_wise('"', _escaped(column), '"', "")


def _join(n: int, *parts: pa.Array | str, skip_nulls: bool = False) -> pa.Array:
    """Element-wise concatenation of string columns and constants (n rows). A null part makes the row
    null, or with `skip_nulls` counts as ""."""
    if skip_nulls:
        out = pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")
    else:
        out = pc.binary_join_element_wise(*parts, "")
    return out if isinstance(out, pa.Array) else pa.repeat(out, n)


def _filled(column: pa.Array | None) -> pa.Array | None:
    """Where a value is not empty (None: a column the batch lacks or has empty in every row)."""
    return None if column is None else pc.not_equal(column, "")


def _either(*masks: pa.Array | None) -> pa.Array | None:
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else pc.or_(out, m)
    return out


def _both(a: pa.Array | None, b: pa.Array) -> pa.Array:
    return b if a is None else pc.and_(a, b)


def _masked(values: pa.Array, where: pa.Array | None) -> pa.Array:
    """`values` with a null wherever `where` is false (the values' buffers reused, no copy)."""
    if where is None:
        return values
    if values.null_count:
        where = pc.and_(where, pc.is_valid(values))
    if values.offset or where.offset or where.null_count or values.type != pa.string():
        return pc.if_else(where, values, pa.scalar(None, type=values.type))
    return pa.Array.from_buffers(values.type, len(values), [where.buffers()[1], *values.buffers()[1:]])


class _Object:
    """One JSON object per row, member by member: parts that are constants, columns, or fragments that
    are null in the rows that leave the member out. The first member must be in every row."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: list[pa.Array | str] = []

    def _head(self, key: str) -> str:
        return f',"{key}":' if self.parts else f'"{key}":'

    def add(self, key: str, value: pa.Array | str, where: pa.Array | None = None) -> None:
        """`"key": value` (JSON text: a column or one constant; a null value leaves the member out of
        that row), in the rows where `where` is true (all when None)."""
        head = self._head(key)
        if where is None and isinstance(value, str):
            self.parts.append(head + value)
        elif where is None and not value.null_count:
            self.parts.extend((head, value))
        else:
            assert self.parts, "the first member is in every row"
            if isinstance(value, str):
                value = pa.repeat(pa.scalar(value), self.n)
            self.parts.append(_join(self.n, head, _masked(value, where)))

    def string(self, key: str, column: pa.Array | None, where: pa.Array | None = None) -> None:
        """A string member (an absent column counts as "" in every row)."""
        if column is None:
            self.add(key, '""', where)
        elif where is None:
            self.parts.extend((self._head(key) + '"', _escaped(column), '"'))
        else:
            assert self.parts, "the first member is in every row"
            self.parts.append(_join(self.n, self._head(key) + '"', _masked(_escaped(column), where), '"'))

    def nonempty(self, key: str, column: pa.Array | None, where: pa.Array | None = None) -> None:
        """A string member only where the value is not empty (and `where` holds)."""
        if column is not None:
            self.string(key, column, _both(where, _filled(column)))

    def text(self) -> pa.Array:
        return _join(self.n, "{", *self.parts, "}", skip_nulls=True)


Element = tuple[pa.Array | None, Callable[[Callable[[pa.Array | None], pa.Array | None], int], pa.Array]]


def _items(n: int, elements: list[Element]) -> pa.Array | str:
    """The inside of a JSON array for each row: its elements' texts joined by commas ("" for none).
    An element is (where it is present, None for every row; build(pick, m) -> its JSON texts for the m
    rows that have it, pick(column) giving a column's values in those rows). An element is built for
    the rows that have it only (most of the 50 identifier slots are empty in most rows)."""
    rows, texts = [], []
    for present, build in elements:
        if present is None or present.true_count == n:
            rows.append(np.arange(n))
            texts.append(build(lambda column: column, n))
            continue
        at = np.flatnonzero(present.to_numpy(zero_copy_only=False))
        if len(at):
            take = pa.array(at)
            rows.append(at)
            texts.append(build(lambda column, take=take: None if column is None else column.take(take), len(at)))
    if not rows:
        return ""
    if len(rows) == 1 and len(rows[0]) == n:
        return texts[0]
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")  # by row, each row's elements in the given order
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
    values = pa.concat_arrays(texts).take(pa.array(order))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), ",")


class _Lookup:
    """code -> JSON text of its description, column-wise (null where the code is not known). The Arrow
    arrays are made on first use (importing this module makes none: the DAG files import it)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = dict(mapping)
        self.arrays: tuple[pa.Array, pa.Array] | None = None

    def __call__(self, column: pa.Array | None, default: str | None = None) -> pa.Array | str | None:
        if column is None:  # every code is ""
            return json.dumps(self.mapping[""], ensure_ascii=False) if "" in self.mapping else default
        if self.arrays is None:
            self.arrays = (pa.array(list(self.mapping), type=pa.string()),
                           _jstr(pa.array(list(self.mapping.values()), type=pa.string())))
        keys, values = self.arrays
        out = values.take(pc.index_in(column, value_set=keys))
        return pc.fill_null(out, default) if default is not None else out


_NAME_TYPES = _Lookup(OTHER_NAME_TYPES)
_IDENTIFIER_TYPES = _Lookup(IDENTIFIER_TYPES)
_COUNTRY_NAMES = _Lookup(COUNTRY_NAMES)
_YES_NO = _Lookup(YES_NO)

_ISO_RE, _ISO_TO = r"(?s)^(.{2})/(.{2})/(.{4})$", r"\3-\1-\2"  # iso_date: any 10 characters with / at 2 and 5
_DATE_RE, _DATE_TO = r"^(\d\d)/(\d\d)/(\d{4})$", r"\3-\1-\2"
_PHONE_RE, _PHONE_TO = r"^(\d{3})(\d{3})(\d{4})$", r"\1-\2-\3"
DATE_COLUMNS = frozenset(("Provider Enumeration Date", "Last Update Date", "Certification Date"))
PHONE_COLUMNS = frozenset((ADDRESS_COLUMNS["LOCATION"]["phone"], ADDRESS_COLUMNS["LOCATION"]["fax"],
                           ADDRESS_COLUMNS["MAILING"]["phone"], ADDRESS_COLUMNS["MAILING"]["fax"],
                           "Authorized Official Telephone Number"))


def _api_phones(column: pa.Array | None) -> pa.Array | None:
    """`api_phone` of every value: ASCII digits by Arrow; the rare ten characters that are not ASCII
    (str.isdigit takes other scripts' digits too) by api_phone itself."""
    if column is None:
        return None
    out = pc.replace_substring_regex(column, pattern=_PHONE_RE, replacement=_PHONE_TO)
    odd = pc.and_(pc.equal(pc.utf8_length(column), 10), pc.invert(pc.string_is_ascii(column)))
    if _any(odd):
        values = [api_phone(v) for v in column.filter(odd).to_pylist()]
        out = pc.replace_with_mask(out, odd, pa.array(values, type=pa.string()))
    return out


def _address_object(n: int, line1: pa.Array | None, line2: pa.Array | None, city: pa.Array | None,
                    state: pa.Array | None, postal: pa.Array | None, country: pa.Array | None,
                    phone: pa.Array | None, fax: pa.Array | None, purpose: str | None,
                    extension: pa.Array | None = None) -> pa.Array:
    """`_address` column-wise: phone and fax already in the API's spelling."""
    a = _Object(n)
    if country is None:
        a.add("country_code", '"US"')
        if "US" in COUNTRY_NAMES:
            a.add("country_name", json.dumps(COUNTRY_NAMES["US"], ensure_ascii=False))
        a.add("address_type", '"DOM"')
    else:
        cc = pc.if_else(pc.equal(country, ""), "US", country)
        a.string("country_code", cc)
        a.add("country_name", _COUNTRY_NAMES(cc))
        a.add("address_type", pc.if_else(pc.equal(cc, "US"), '"DOM"', '"FGN"'))
    a.string("address_1", line1)
    a.string("address_2", line2)
    a.string("city", city)
    a.string("state", state)
    a.string("postal_code", postal)
    a.nonempty("telephone_number", phone)
    a.nonempty("telephone_extension", extension)
    if purpose:
        a.add("address_purpose", f'"{purpose}"')
    a.nonempty("fax_number", fax)
    return a.text()


def _taxonomy_object(n: int, code: pa.Array, lic: pa.Array | None, state: pa.Array | None,
                     switch: pa.Array | None, group: pa.Array | None, desc: _Lookup | None) -> pa.Array:
    t = _Object(n)
    t.string("code", code)
    t.string("taxonomy_group", group)
    if desc is not None:
        t.add("desc", desc(code))
    t.string("state", state)
    t.add("license", "null" if lic is None else pc.if_else(pc.equal(lic, ""), "null", _jstr(lic)))
    t.add("primary", "false" if switch is None else pc.if_else(pc.equal(switch, "Y"), "true", "false"))
    return t.text()


def _identifier_object(n: int, ident: pa.Array, code: pa.Array | None, state: pa.Array | None,
                       issuer: pa.Array | None) -> pa.Array:
    o = _Object(n)
    o.string("code", code)
    o.add("desc", _IDENTIFIER_TYPES(code, '"Other"'))
    o.string("issuer", issuer)
    o.string("identifier", ident)
    o.string("state", state)
    return o.text()


class _Columns:
    """The kept rows of a batch by column name: dates and phone numbers already in the API's spelling
    (converted by Arrow), columns empty in every row left out (`get` answers None)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.n = batch.num_rows
        self.cols: dict[str, pa.Array] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if not _nonempty(column):
                continue
            if name in DATE_COLUMNS:
                column = pc.replace_substring_regex(column, pattern=_DATE_RE, replacement=_DATE_TO)
            elif name in PHONE_COLUMNS:
                column = pc.replace_substring_regex(column, pattern=_PHONE_RE, replacement=_PHONE_TO)
            self.cols[name] = column

    def get(self, name: str) -> pa.Array | None:
        return self.cols.get(name)


TAXONOMY_COLUMNS = tuple(_taxonomy_columns(i) for i in range(1, TAXONOMY_SLOTS + 1))
IDENTIFIER_COLUMNS = tuple(_identifier_columns(i) for i in range(1, IDENTIFIER_SLOTS + 1))
_ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal", "country", "phone", "fax")


def _results_json(batch: pa.RecordBatch, sides: Mapping[str, _Side], taxonomy_desc: _Lookup | None,
                  file_name: str) -> tuple[pa.Array, pa.Array, int]:
    """(NPIs, the cache row's response JSON, how many are deactivated) of a batch of kept main rows:
    {"result_count": 1, "results": [<API-shaped result>], "source": "nppes_bulk", "file": file_name}."""
    c = _Columns(batch)
    n = c.n
    npis = batch.column(batch.schema.get_field_index("NPI"))
    ints = pc.cast(npis, pa.int64()).to_numpy()  # kept rows are NPIs (NpiSet)
    get = c.get

    etype = get("Entity Type Code")
    if etype is None:
        etype_json: pa.Array | str = "null"
        is_org = None
    else:
        etype_json = pc.if_else(pc.equal(etype, ""), "null", _join(n, '"NPI-', _escaped(etype), '"'))
        is_org = pc.equal(etype, "2")
    is_person = None if is_org is None else pc.invert(is_org)

    # basic
    basic = _Object(n)
    basic.add("status", '"A"')
    if is_org is not None:
        for key, col in ORGANIZATION_BASIC:
            basic.nonempty(key, get(col), is_org)
        basic.nonempty("authorized_official_telephone_number", get("Authorized Official Telephone Number"), is_org)
        subpart = get("Is Organization Subpart")
        if subpart is not None:
            basic.add("organizational_subpart", _YES_NO(subpart), is_org)
    for key, col in INDIVIDUAL_BASIC:
        basic.nonempty(key, get(col), is_person)
    sole = get("Is Sole Proprietor")
    if sole is not None:
        basic.add("sole_proprietor", _YES_NO(sole), is_person)
    sexes = [s for s in (get(col) for col in SEX_COLUMNS) if s is not None]
    if sexes:
        sex = sexes[0] if len(sexes) == 1 else pc.if_else(pc.equal(sexes[0], ""), sexes[1], sexes[0])
        basic.nonempty("sex", sex, is_person)
    basic.nonempty("enumeration_date", get("Provider Enumeration Date"))
    basic.nonempty("last_updated", get("Last Update Date"))
    basic.nonempty("certification_date", get("Certification Date"))

    # addresses
    addresses: list[Element] = []
    for purpose, names in ADDRESS_COLUMNS.items():
        fields = [get(names[f]) for f in _ADDRESS_FIELDS]
        line1, city, postal = fields[0], fields[2], fields[4]
        present = _either(_filled(line1), _filled(city), _filled(postal))
        if present is not None:
            addresses.append((present, lambda pick, m, fields=fields, purpose=purpose:
                              _address_object(m, *map(pick, fields), purpose)))

    # taxonomies, identifiers: only the slots some row has, built for the rows that have them
    taxonomies: list[Element] = []
    for cols in TAXONOMY_COLUMNS:
        if get(cols[0]) is not None:
            taxonomies.append((_filled(get(cols[0])), lambda pick, m, cols=cols:
                               _taxonomy_object(m, *map(pick, map(get, cols)), taxonomy_desc)))
    identifiers: list[Element] = []
    for cols in IDENTIFIER_COLUMNS:
        if get(cols[0]) is not None:
            identifiers.append((_filled(get(cols[0])), lambda pick, m, cols=cols:
                                _identifier_object(m, *map(pick, map(get, cols)))))

    # other names: the other person name, then the othername member's rows, else the main file's one
    other_names: list[Element] = []
    person = [(key, get(col)) for key, col in OTHER_PERSON_NAME if get(col) is not None]
    if person:
        person_code = get("Provider Other Last Name Type Code")

        def person_name(pick, m: int) -> pa.Array:
            o = _Object(m)
            code = pick(person_code)
            o.add("type", _NAME_TYPES(code, '"Other Name"'))
            o.string("code", code)
            for key, column in person:
                o.nonempty(key, pick(column))
            return o.text()

        other_names.append((_either(*(_filled(column) for _k, column in person)), person_name))
    side_names = sides["othername"].lookup(ints) if "othername" in sides else None
    has_side = None if side_names is None else side_names.is_valid()
    if side_names is not None and has_side.true_count:
        other_names.append((has_side, lambda pick, m: pick(side_names)))
    other_org = get("Provider Other Organization Name")
    if other_org is not None:
        org_code = get("Provider Other Organization Name Type Code")

        def org_name(pick, m: int) -> pa.Array:
            o = _Object(m)
            code = pick(org_code)
            o.string("organization_name", pick(other_org))
            o.string("code", code)
            o.add("type", _NAME_TYPES(code, '"Other Name"'))
            return o.text()

        own = _filled(other_org) if has_side is None else pc.and_(_filled(other_org), pc.invert(has_side))
        other_names.append((own, org_name))

    def side_items(kind: str) -> pa.Array | str:
        """An NPI's entries of a side member (null: none, counted as "" in the join)."""
        return sides[kind].lookup(ints) if kind in sides else ""

    head = '{"result_count":1,"results":[{"enumeration_type":'
    tail = ('}],"source":"nppes_bulk","file":' + _jstr(pa.array([file_name], type=pa.string()))[0].as_py()
            + "}")
    number = _join(n, '"', npis, '"')
    result = _join(n, head, etype_json, ',"number":', number,
                   ',"addresses":[', _items(n, addresses), '],"practiceLocations":[', side_items("pl"),
                   '],"basic":', basic.text(), ',"taxonomies":[', _items(n, taxonomies),
                   '],"identifiers":[', _items(n, identifiers), '],"endpoints":[', side_items("endpoint"),
                   '],"other_names":[', _items(n, other_names), "]", tail, skip_nulls=True)

    # deactivated: only the NPI and the deactivation date are in the files
    deactivated = 0
    deact = get("NPI Deactivation Date")
    if deact is not None:
        deact_iso = pc.replace_substring_regex(deact, pattern=_ISO_RE, replacement=_ISO_TO)
        gone = _filled(deact)
        react = get("NPI Reactivation Date")
        if react is not None:
            react_iso = pc.replace_substring_regex(react, pattern=_ISO_RE, replacement=_ISO_TO)
            back = pc.and_(_filled(react), pc.greater_equal(react_iso, deact_iso))
            gone = pc.and_(gone, pc.invert(back))
        deactivated = gone.true_count
        if deactivated:
            stub = _join(n, head, etype_json, ',"number":', number,
                         ',"addresses":[],"practiceLocations":[],"basic":{"status":"D","deactivation_date":',
                         _jstr(deact_iso), '},"taxonomies":[],"identifiers":[],"endpoints":[],"other_names":[]',
                         tail)
            result = pc.if_else(gone, stub, result)
    return npis, result, deactivated


# ---------------------------------------------------------------------------------------------- side members


class _Side:
    """The wanted NPIs' entries of one side member as JSON text, the entries of an NPI joined (file
    order kept within an NPI), sorted by NPI; `lookup` finds them for a batch of NPIs column-wise."""

    def __init__(self, path: Path, kind: str, wanted: NpiSet, stats: PreloadStats) -> None:
        self.kind = kind
        columns = _side_projection(path, kind)
        fields = list(columns)
        names = list(columns.values())
        npi_at = names.index(columns["npi"])
        parts, rows = [], 0
        for batch in _stream(path, names):
            rows += batch.num_rows
            mask = wanted.mask(batch.column(npi_at))
            if _any(mask):
                parts.append(batch.filter(mask))
        stats.rows_read[path.name] = rows
        self.keys = np.zeros(0, dtype=np.int64)
        self.texts = pa.array([], type=pa.string())
        if not parts:
            return
        table = pa.Table.from_batches(parts).rename_columns(fields).combine_chunks()
        ints = pc.cast(table.column("npi"), pa.int64()).to_numpy()
        order = np.argsort(ints, kind="stable")
        ints = ints[order]
        table = table.take(pa.array(order))
        texts = _side_objects(kind, {f: table.column(f).combine_chunks() for f in fields}, table.num_rows)
        starts = np.flatnonzero(np.r_[True, ints[1:] != ints[:-1]])
        offsets = pa.array(np.r_[starts, len(ints)].astype(np.int32))
        self.keys = ints[starts]
        self.texts = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), ",")

    def lookup(self, npis: np.ndarray) -> pa.Array:
        """For each NPI (int64) its entries' JSON texts joined by commas, null where it has none."""
        if not len(self.keys):
            return pa.nulls(len(npis), type=pa.string())
        at = np.searchsorted(self.keys, npis)
        at[at == len(self.keys)] = 0
        return self.texts.take(pa.array(at, mask=self.keys[at] != npis))


def _side_objects(kind: str, cols: Mapping[str, pa.Array], n: int) -> pa.Array:
    """The API-shaped entry (JSON text) of each side row, by field name (`SIDE_FIELDS`)."""
    get = cols.get
    if kind == "othername":
        o = _Object(n)
        o.string("organization_name", cols["name"])
        o.string("code", cols["code"])
        o.add("type", _NAME_TYPES(cols["code"], '"Other Name"'))
        return o.text()
    if kind == "pl":
        return _address_object(n, get("line1"), get("line2"), get("city"), get("state"), get("postal"),
                               get("country"), _api_phones(get("phone")), _api_phones(get("fax")), None,
                               get("extension"))
    # endpoint: the non-empty fields, a country code ("US" if none), address type and country name
    o = _Object(n)
    country = get("country_code")
    cc = pa.repeat(pa.scalar("US"), n) if country is None else pc.if_else(pc.equal(country, ""), "US", country)
    o.string("country_code", cc)
    o.add("address_type", pc.if_else(pc.equal(cc, "US"), '"DOM"', '"FGN"'))
    o.add("country_name", _COUNTRY_NAMES(cc))
    for name, column in cols.items():
        if name not in ("npi", "country_code"):
            o.nonempty(name, column)
    return o.text()


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
    # where the time went: waiting for parsed CSV blocks, building the JSON (incl. the side files),
    # the writer threads' upserts (overlapping the others), and waiting for a writer (backpressure)
    read_seconds: float = 0.0
    build_seconds: float = 0.0
    write_seconds: float = 0.0
    write_wait_seconds: float = 0.0
    files: list[str] = field(default_factory=list)  # main files in processing order


class _Writer:
    """Upserts batches on threads of their own, one per connection (each connection is used by its
    thread alone meanwhile): PostgreSQL works on one batch while the next is built, and with two
    connections two backends parse JSON at once. Each NPI is in one batch only (see `_superseded`),
    so the order in which batches land does not matter."""

    def __init__(self, conns: list[psycopg.Connection]) -> None:
        self.queue: queue.Queue[Callable[[psycopg.Connection], Any] | None] = queue.Queue(maxsize=1)  # one waits
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
            job = self.queue.get()
            if job is None:
                return
            if self.error is None:
                t0 = time.perf_counter()
                try:
                    job(conn)
                except BaseException as exc:  # handed to the building thread
                    self.error = exc
                with self.lock:
                    self.busy += time.perf_counter() - t0

    def put(self, job: Callable[[psycopg.Connection], Any]) -> None:
        """Run job(connection) on a writer thread (one batch's upsert)."""
        self._raise()
        t0 = time.perf_counter()
        self.queue.put(job)
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
    """The Luhn-valid NPIs of maps.npi_wanted that look like NPIs (anything else can be in no NPPES
    file), as an Arrow array: one newline-joined text from PostgreSQL split by Arrow (no Python string
    or COPY message per NPI)."""
    text = conn.execute("SELECT coalesce(string_agg(npi, E'\\n'), '') FROM maps.npi_wanted "
                        "WHERE luhn_valid AND npi ~ %s", [_NPI_RE]).fetchone()[0]
    conn.commit()
    if not text:
        return pa.array([], type=pa.string())
    return pc.split_pattern(pa.array([text], type=pa.string()), "\n").flatten()


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
# The main files become a stream of events, file by file:
#   ("start", k)                                    file k begins
#   ("batch", k, rows_read, filtered | None, [npi])  a block with wanted rows (minus those a later
#                                                   weekly has) or wanted NPIs skipped for that; the
#                                                   blocks with neither are only counted
#   ("end", k, rows_read_total)
# produced in this process (reader="thread") or in a reader process (reader="process") that parses
# and filters on cores of its own and hands over only the wanted rows as Arrow IPC. A reader process
# reads a file larger than CHUNK_BYTES as chunks (byte ranges at line ends) on PARSE_THREADS
# threads, each taking the next chunk when done with one: the blocks of the chunks interleave, and
# the threads end together whatever the file's layout (the sandbox has all wanted NPIs first).
# preload reads in the two steps above (`_prefiltered`); `provider_facts` reads plainly (`_stream`).


Blocks = Iterator[tuple[int, pa.RecordBatch | None, list[str]]]  # (rows read, kept rows, replaced NPIs)


def _keep(batch: pa.RecordBatch, wanted: NpiSet, skip: NpiSet) -> tuple[pa.RecordBatch | None, list[str]]:
    """A block's rows of wanted NPIs minus those a later weekly has, and those NPIs."""
    npi = batch.column(0)
    mask = wanted.mask(npi)
    replaced: list[str] = []
    if len(skip) and _any(mask):
        later = pc.and_(mask, skip.mask(npi))
        if _any(later):
            replaced = npi.filter(later).to_pylist()
            mask = pc.and_(mask, pc.invert(later))
    kept = mask.true_count
    return (batch if kept == len(batch) else batch.filter(mask) if kept else None), replaced


def _kept_blocks(blocks: Iterator[tuple[int, pa.RecordBatch | None]], wanted: NpiSet, skip: NpiSet) -> Blocks:
    """(rows read, kept rows, wanted NPIs skipped for a later weekly) for each block that has either;
    the rows of the blocks in between count into the next item, and a last item (rows, None, [])
    closes the source. `blocks`: (rows, the block or its rows that may be wanted, None for none)."""
    rows = 0
    for n, batch in blocks:
        rows += n
        if batch is None:
            continue
        kept, replaced = _keep(batch, wanted, skip)
        if kept is not None or replaced:
            yield rows, kept, replaced
            rows = 0
    yield rows, None, []


def _sources(file: Path, columns: list[str], block_size: int, wanted: NpiSet, skip: NpiSet, two_step: bool,
             threads: int, chunk_bytes: int) -> list[Blocks]:
    """The `_kept_blocks` sources of one main file (see `_filtered`), one per thread."""
    if not (two_step and _newline_ended(file)):
        plain = ((batch.num_rows, batch) for batch in _stream(file, columns, block_size=block_size))
        return [_kept_blocks(plain, wanted, skip)]
    names = read_header(file)
    size = file.stat().st_size
    if threads < 2 or size <= chunk_bytes:
        return [_kept_blocks(_prefiltered(file, names, columns, (0, size), block_size, wanted), wanted, skip)]
    spans = iter(_spans(file, chunk_bytes))
    lock = threading.Lock()

    def chunks() -> Iterator[tuple[int, pa.RecordBatch | None]]:
        while True:
            with lock:
                span = next(spans, None)
            if span is None:
                return
            yield from _prefiltered(file, names, columns, span, block_size, wanted)

    return [_kept_blocks(chunks(), wanted, skip) for _ in range(threads)]


def _filtered(jobs: list[tuple[str, list[str]]], wanted: NpiSet, skips: list[NpiSet], block_size: int,
              depth: int = 3, threads: int = 1, chunk_bytes: int = 0, two_step: bool = False) -> Iterator[tuple]:
    """The events of the main files (above). `two_step`: read the files in the two steps above (files
    whose lines do not end with LF are read plainly); then with `threads` > 1, a file larger than
    `chunk_bytes` is read as chunks of about that size by that many threads."""
    for k, (path, columns) in enumerate(jobs):
        yield ("start", k)
        sources = _sources(Path(path), columns, block_size, wanted, skips[k], two_step, threads, chunk_bytes)
        total = 0
        for rows, kept, replaced in _prefetch(*sources, depth=depth * len(sources)):
            total += rows
            if kept is not None or replaced:
                yield ("batch", k, rows, kept, replaced)
        yield ("end", k, total)


_FRAME = struct.Struct("<cIQQ")  # type, file index, rows, payload length


def _reader_main() -> None:
    """The reader process: job (pickled) on stdin, framed events on stdout."""
    job = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    sent: tuple[str, ...] = ()  # the columns of the schema sent last

    def frame(kind: bytes, k: int, rows: int, payload: bytes | pa.Buffer = b"") -> None:
        out.write(_FRAME.pack(kind, k, rows, len(payload)))
        if len(payload):
            out.write(payload)

    try:
        for event in _filtered(job["jobs"], job["wanted"], job["skips"], job["block_size"], threads=job["threads"],
                               chunk_bytes=job["chunk_bytes"], two_step=True):
            if event[0] == "start":
                frame(b"s", event[1], 0)
            elif event[0] == "end":
                frame(b"e", event[1], event[2])
            else:
                _kind, k, rows, batch, replaced = event
                if replaced:
                    frame(b"r", k, 0, "\n".join(replaced).encode())
                if batch is not None:
                    # columns empty in every kept row stay here (most of the 326: NPPES is sparse); the
                    # NPI column is kept even then (a lone kept row of an all-empty block)
                    batch = batch.select([i for i, c in enumerate(batch.columns) if i == 0 or _nonempty(c)])
                    if tuple(batch.schema.names) != sent:
                        frame(b"h", k, 0, batch.schema.serialize())
                        sent = tuple(batch.schema.names)
                frame(b"b", k, rows, batch.serialize() if batch is not None else b"")
        frame(b"d", 0, 0)
    except NppesBulkError as exc:
        frame(b"x", 0, 0, pickle.dumps((exc.message, exc.source, exc.line)))
    except BaseException as exc:  # reported to the parent, which raises it
        frame(b"x", 0, 0, pickle.dumps((f"reader process failed: {exc!r}", None, None)))
    out.flush()


def _spawn_reader() -> subprocess.Popen:
    """A reader process (a plain subprocess: works inside daemonic workers too), started before the
    work that precedes the first block so that its start-up (Python, imports) overlaps that work; the
    job follows on its stdin (`_filtered_in_process`)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.Popen([sys.executable, "-c", "from include.maps.nppes_bulk import _reader_main; _reader_main()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None and not pipe.closed:
            with contextlib.suppress(OSError):
                pipe.close()


def _filtered_in_process(jobs: list[tuple[str, list[str]]], wanted: NpiSet, skips: list[NpiSet],
                         block_size: int, proc: subprocess.Popen | None = None) -> Iterator[tuple]:
    """`_filtered` run by a reader process (`proc`, or one started here); it is stopped at the end."""
    proc = proc or _spawn_reader()
    assert proc.stdin is not None and proc.stdout is not None
    try:
        pickle.dump({"jobs": jobs, "wanted": wanted, "skips": skips, "block_size": block_size,
                     "threads": PARSE_THREADS, "chunk_bytes": CHUNK_BYTES}, proc.stdin,
                    protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.close()
        pipe = proc.stdout
        schema: pa.Schema | None = None  # of the batches that follow
        replaced: list[str] = []
        while True:
            head = pipe.read(_FRAME.size)
            if len(head) < _FRAME.size:
                raise NppesBulkError(f"the reader process ended unexpectedly (exit code {proc.wait()})",
                                     source=jobs[0][0])
            kind, k, rows, size = _FRAME.unpack(head)
            payload = pipe.read(size) if size else b""
            if kind == b"b":
                batch = pa.ipc.read_record_batch(pa.py_buffer(payload), schema) if size else None
                yield ("batch", k, rows, batch, replaced)
                replaced = []
            elif kind == b"r":
                replaced = payload.decode().split("\n")
            elif kind == b"h":
                schema = pa.ipc.read_schema(pa.py_buffer(payload))
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
        _stop(proc)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch of the rows of `batches`, whose columns may differ (a reader process leaves out the
    columns empty in a whole block): a column a batch lacks is "" in its rows."""
    if len(batches) == 1:
        return batches[0]
    names = list(dict.fromkeys(name for b in batches for name in b.schema.names))
    if all(b.schema.names == names for b in batches):
        return pa.concat_batches(batches)
    columns = []
    for name in names:
        parts = []
        for b in batches:
            i = b.schema.get_field_index(name)
            parts.append(b.column(i) if i >= 0 else pa.repeat(pa.scalar("", type=pa.string()), b.num_rows))
        columns.append(pa.concat_arrays(parts))
    return pa.RecordBatch.from_arrays(columns, names=names)


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

    if reader == "auto":
        reader = "process" if sum(b.main.stat().st_size for b in files.bundles) > PROCESS_READER_BYTES else "thread"
    stats.reader = reader
    proc = _spawn_reader() if reader == "process" else None
    try:
        _preload(conn, files, stats, projections, proc, wanted=wanted, batch_rows=batch_rows, api_run_id=api_run_id,
                 taxonomy_descriptions=taxonomy_descriptions, block_size=block_size, writers=writers)
    finally:
        if proc is not None:
            _stop(proc)
    stats.seconds = time.perf_counter() - started
    return stats


def _preload(conn: psycopg.Connection, files: BulkFiles, stats: PreloadStats, projections: list[list[str]],
             proc: subprocess.Popen | None, *, wanted: Iterable[str] | pa.Array | NpiSet | None, batch_rows: int,
             api_run_id: str | None, taxonomy_descriptions: Mapping[str, str] | None, block_size: int,
             writers: int) -> None:
    wanted_set = _as_npi_set(wanted_npis(conn) if wanted is None else wanted)
    stats.wanted = len(wanted_set)
    if len(wanted_set) == 0:
        return
    superseded = _superseded(files, wanted_set)
    replaced: set[str] = set()
    jobs = [(str(b.main), columns) for b, columns in zip(files.bundles, projections, strict=True)]
    if proc is not None:
        # deep: the reader keeps parsing while the side members are loaded here
        events = _prefetch(_filtered_in_process(jobs, wanted_set, superseded, block_size, proc), depth=PREFETCH_BLOCKS)
    else:
        events = _filtered(jobs, wanted_set, superseded, block_size, two_step=True)

    # Two writer threads and this one share the GIL (the Arrow kernels and the socket I/O release it);
    # a writer back from PostgreSQL should not wait the default 5 ms.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, 0.0005))
    extra = _sibling_connections(conn, writers - 1) if writers > 1 else []
    writer = _Writer([conn, *extra])
    descriptions = _Lookup(taxonomy_descriptions) if taxonomy_descriptions else None
    sides: dict[str, _Side] = {}
    bundle = files.monthly
    held: list[pa.RecordBatch] = []  # kept rows not built yet (fewer than batch_rows but at a bundle's end)
    held_rows = 0

    def build(rows: pa.RecordBatch) -> None:
        npis, texts, deactivated = _results_json(rows, sides, descriptions, bundle.name)
        stats.wanted_found += len(npis)
        stats.deactivated += deactivated
        params = {"source_file": bundle.name}
        writer.put(lambda c: cache.upsert_json(c, "npi", npis, texts, status="found", source="bulk",
                                               request_params=params, api_run_id=api_run_id))
        stats.batches += 1

    def flush(final: bool) -> None:
        """Build and hand over batch_rows kept rows at a time (at a bundle's end, the rest too)."""
        nonlocal held, held_rows
        while held_rows >= batch_rows or (final and held_rows):
            rows = _concat(held)
            rest = rows.slice(batch_rows)
            held, held_rows = ([rest] if rest.num_rows else []), rest.num_rows
            build(rows.slice(0, batch_rows))

    try:
        loop_started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            event = next(events, None)
            stats.read_seconds += time.perf_counter() - t0
            if event is None:
                break
            if event[0] == "start":
                bundle = files.bundles[event[1]]
                sides = {}  # the previous bundle's side rows go first
                sides = {kind: _Side(getattr(bundle, kind), kind, wanted_set, stats)
                         for kind in SIDE_KINDS if getattr(bundle, kind) is not None}
                continue
            if event[0] == "end":
                flush(final=True)
                stats.rows_read[bundle.name] = event[2]
                log.info("%s: %s rows read; %s wanted NPIs found so far", bundle.main, f"{event[2]:,}",
                         f"{stats.wanted_found:,}")
                continue
            _kind, _k, _rows, batch, skipped = event
            replaced.update(skipped)
            if batch is not None and batch.num_rows:
                held.append(batch)
                held_rows += batch.num_rows
                flush(final=False)
        stats.build_seconds = time.perf_counter() - loop_started
        t0 = time.perf_counter()
        writer.close()
        writer.waited += time.perf_counter() - t0
    finally:
        events.close()  # stops the reader (thread or process) on an error
        writer.close(check=False)  # on an error: the batches handed over are still written, then it stops
        for c in extra:
            c.close()
        sys.setswitchinterval(switch_interval)
    stats.write_seconds, stats.write_wait_seconds = writer.busy, writer.waited
    stats.build_seconds -= stats.read_seconds + stats.write_wait_seconds
    stats.replaced_by_weekly = len(replaced)


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
