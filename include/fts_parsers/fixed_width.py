"""Fixed-width reader for ResDAC Medicare `.dat` files (issue 7): large binary blocks, vectorised cuts.

The file is read in blocks of `block_size` bytes (default 4 MiB) that are cut at the last line end, so
a record is never split between two batches and memory stays bounded by the block size (plus the
longest line). Within a block everything is numpy/pyarrow: line ends are found with
`np.flatnonzero(block == 10)`, every column is gathered as an `(n, width)` byte matrix through a
sliding-window view of the block and turned into a pyarrow array without a Python loop over rows.

Records, terminators (reference `nsaph_medicare_model.md` 1.5):
- a record is `record_length` bytes followed by `\\n` or `\\r\\n`, or by nothing (back-to-back records);
  the terminator is detected from the first line end of the file (`FwfStats.terminator`);
- the record number is the 1-based line number in the file (the record index for unterminated files);
- a line of another length is rejected as `short_record` / `long_record`; empty lines (e.g. a trailing
  blank line) are not records: they are skipped and counted in `FwfStats.empty_lines`.

Values:
- CHAR -> string, trailing blanks removed (leading blanks are data in a left-justified field);
  an all-blank field -> NULL;
- NUM without scale -> int64 (decimal128(width, 0) beyond 18 digits); NUM with scale (`12.2`, the
  decimal point is in the data) -> decimal128(width, scale), never a float; `[+-]?digits[.digits]`
  with at most `scale` decimals, blanks around allowed; blank -> NULL;
- DATE -> date32 from YYYYMMDD, checked for a real calendar day (20110231 is rejected: pyarrow's
  strptime would silently roll it to March 3rd, so dates are decoded with numpy); blank -> NULL.
A value that does not convert rejects its record (`bad_value:<COLUMN>:<raw value>`; several bad columns
are joined with `; `); the rest of the batch loads.

Encoding: ResDAC files are ASCII. A byte >= 0x80 is counted in `FwfStats.non_ascii_values`; in a NUM
or DATE column such a value is a bad value like any other. In a CHAR column, `non_ascii="latin1"` (the
default) decodes it as latin-1 (one byte -> one character, never fails, `value.encode("latin-1")` gives
the bytes back); `non_ascii="reject"` (what the loader uses) rejects the record instead
(`non_ascii:<COLUMN>:<value, other bytes as \\xNN>`), so a file in another encoding is never loaded as
mojibake. UTF-8 is deliberately not tried: fixed-width slicing can cut a multi-byte sequence in half,
and the files are declared ASCII.

COPY text (`FwfReader.copy_blocks`, what the loader streams): the same records, checks and rejects, but
each block comes out as PostgreSQL `COPY ... (FORMAT text, NULL '')` bytes instead of typed Arrow
columns: CHAR values trimmed as above (`\\`, tab, CR, LF and `"` escaped), NUM values as their trimmed
text (already checked, so PostgreSQL's input functions accept exactly what the Arrow types would),
DATE values as their YYYYMMDD digits (calendar-checked here; PostgreSQL reads YYYYMMDD in any
DateStyle), NULL as an empty field. Nothing is converted to a Python or Arrow number or date on the
way. A NUL byte in a CHAR value cannot go into PostgreSQL text: that record is rejected (`nul_byte`).

Rejects are returned with each batch (`FwfBatch.rejects`) so the loader can write them to its audit
table (file, record, reason, raw bytes); `FwfStats` counts them by kind (`short_record`,
`long_record`, `non_numeric`, `invalid_date`, `bad_value`, the kinds of the sandbox manifest, and
`non_ascii`, `nul_byte`).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.lib.stride_tricks import sliding_window_view

from include.common.errors import ClaimsflowError

__all__ = [
    "ColumnLike",
    "FwfBatch",
    "FwfCopyBlock",
    "FwfColumn",
    "FwfError",
    "FwfReader",
    "FwfStats",
    "Reject",
    "arrow_schema",
    "batch_to_csv",
    "columns_from_widths",
    "read_fwf",
]

DEFAULT_BLOCK_SIZE = 4 * 2**20  # measured: 4 MiB is faster than 16 or 64 (cache) and keeps RSS low
TYPES = ("CHAR", "NUM", "DATE")
NON_ASCII = ("latin1", "reject")
LF, CR, SPACE = 10, 13, 32
_BLANK8 = np.uint64(0x2020202020202020)  # 8 spaces as one uint64


class FwfError(ClaimsflowError):
    """The data file cannot be read at all (missing, empty, unusable layout); bad records are not errors."""


class ColumnLike(Protocol):
    """What the reader needs of a column; the FTS parser's column type can be passed if it has these."""

    name: str
    type: str  # CHAR | NUM | DATE
    width: int
    scale: int
    offset: int  # 0-based byte offset within the record


@dataclass(frozen=True)
class FwfColumn:
    name: str
    type: str  # CHAR | NUM | DATE
    width: int
    scale: int = 0
    offset: int = 0


def columns_from_widths(specs: Sequence[tuple[str, str, int] | tuple[str, str, int, int]]) -> list[FwfColumn]:
    """(name, type, width[, scale]) in record order -> columns with cumulative offsets (as dorieh does)."""
    out, pos = [], 0
    for spec in specs:
        name, type_, width = spec[0], spec[1], spec[2]
        scale = spec[3] if len(spec) > 3 else 0
        out.append(FwfColumn(name, type_, int(width), int(scale), pos))
        pos += int(width)
    return out


@dataclass(frozen=True)
class Reject:
    record: int  # 1-based line number in the file
    reason: str  # short_record | long_record | bad_value:<COLUMN>:<raw>[; bad_value:...] | non_ascii:... | nul_byte:...
    raw: bytes  # the record without its line terminator
    kind: str = ""  # short_record | long_record | non_numeric | invalid_date | bad_value | non_ascii | nul_byte

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.reason.split(":", 1)[0])


@dataclass
class FwfBatch:
    record_numbers: pa.Array  # int64, 1-based line numbers of the rows of `table`
    table: pa.Table  # typed columns, named as the layout
    rejects: list[Reject]


@dataclass
class FwfCopyBlock:
    data: memoryview  # COPY (FORMAT text, DELIMITER E'\\t', NULL '') rows: [record_number,] then the columns
    rows: int
    rejects: list[Reject]


@dataclass
class FwfStats:
    path: str = ""
    record_length: int = 0
    terminator: str = ""  # LF | CRLF | none
    records: int = 0  # lines that are records (empty lines excluded)
    good: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # by kind
    empty_lines: int = 0
    non_ascii_values: int = 0
    reject_lengths: dict[int, int] = field(default_factory=dict)  # length -> count, of wrong-length records
    bytes: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rejects(self) -> int:
        return sum(self.rejected.values())


# --------------------------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class _Col:
    name: str
    type: str
    width: int
    scale: int
    offset: int
    arrow: pa.DataType
    regex: str | None  # NUM validation pattern


def _num_type(width: int, scale: int) -> pa.DataType:
    if scale == 0 and width <= 18:
        return pa.int64()
    return pa.decimal128(min(max(width, scale + 1), 38), scale)


def _num_regex(width: int, scale: int) -> str:
    if scale == 0:
        return rf"^[+-]?\d{{1,{min(width, 18) if width <= 18 else 38}}}$"
    ints = max(min(width, 38) - scale, 1)
    return rf"^[+-]?(\d{{1,{ints}}}(\.\d{{0,{scale}}})?|\.\d{{1,{scale}}})$"


def _prepare(columns: Sequence[ColumnLike], record_length: int, source: str) -> list[_Col]:
    if record_length <= 0:
        raise FwfError(f"record length must be positive, got {record_length}", source=source)
    if not columns:
        raise FwfError("no columns given", source=source)
    seen: set[str] = set()
    out = []
    for c in columns:
        type_ = str(c.type).upper()
        width, scale, offset = int(c.width), int(getattr(c, "scale", 0) or 0), int(c.offset)
        if type_ not in TYPES:
            raise FwfError(f"column {c.name}: type {c.type!r} is not one of {', '.join(TYPES)}", source=source)
        if width <= 0 or offset < 0 or offset + width > record_length:
            raise FwfError(f"column {c.name}: bytes {offset + 1}-{offset + width} are outside the record length "
                           f"{record_length}", source=source)
        if scale < 0 or (scale and (type_ != "NUM" or scale >= width)):
            raise FwfError(f"column {c.name}: scale {scale} does not fit {type_} width {width}", source=source)
        if c.name in seen:
            raise FwfError(f"column {c.name} appears twice", source=source)
        seen.add(c.name)
        arrow = {"CHAR": pa.string(), "DATE": pa.date32()}.get(type_) or _num_type(width, scale)
        out.append(_Col(c.name, type_, width, scale, offset, arrow, _num_regex(width, scale) if type_ == "NUM" else None))
    return out


def arrow_schema(columns: Sequence[ColumnLike], record_length: int) -> pa.Schema:
    """The schema of `FwfBatch.table` for these columns (for the loader's CREATE TABLE)."""
    return pa.schema([pa.field(c.name, c.arrow) for c in _prepare(columns, record_length, "<layout>")])


# ------------------------------------------------------------------------------------------ converting

def _validity(valid: np.ndarray) -> tuple[pa.Buffer | None, int]:
    nulls = int(valid.size - np.count_nonzero(valid))
    if nulls == 0:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _with_nulls(arr: pa.Array, valid: np.ndarray) -> pa.Array:
    """The same string array with `~valid` rows as NULL (no copy of the data)."""
    bitmap, nulls = _validity(valid)
    if nulls == 0:
        return arr
    if arr.offset:
        arr = arr.take(pa.array(np.arange(len(arr))))  # rare: re-base so the bitmap lines up
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, *arr.buffers()[1:]], null_count=nulls)


def _lengths(arr: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset:arr.offset + len(arr) + 1]
    return np.diff(offsets)


def _strings(raw: np.ndarray, latin1: np.ndarray | None) -> pa.Array:
    """(n, w) uint8 C-contiguous -> pa.string() without NULLs (untrimmed). Non-ASCII bytes -> latin-1."""
    n, w = raw.shape
    offsets = pa.py_buffer(np.arange(0, (n + 1) * w, w, dtype=np.int32))
    if latin1 is not None and latin1.any():  # rare: rebuild only the non-ASCII values through Python
        fixed = pa.array([bytes(r).decode("latin-1") for r in raw[latin1]], pa.string())
        base = pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(raw)])
        return pc.replace_with_mask(base, pa.array(latin1), fixed.cast(pa.binary())).cast(pa.string())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(raw)])


def _blank(raw: np.ndarray) -> np.ndarray:
    """All-space rows of an (n, w) byte matrix, cheaply for the common widths."""
    w = raw.shape[1]
    if w == 1:
        return raw[:, 0] == SPACE
    if w in (2, 4, 8):
        word = {2: np.uint16, 4: np.uint32, 8: np.uint64}[w]
        return raw.view(word)[:, 0] == word(int.from_bytes(b" " * w, "little"))
    return (raw == SPACE).all(axis=1)


def _date_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pair = np.full(1 << 16, 10_000, np.int32)  # two ASCII digits as a little-endian uint16 -> 0..99
    for tens in range(10):
        for ones in range(10):
            pair[(48 + tens) | ((48 + ones) << 8)] = tens * 10 + ones
    month_day = np.zeros(10_001, np.uint8)  # MMDD -> 1: a day of every year, 2: February 29
    for m, days in enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1):
        month_day[m * 100 + 1:m * 100 + days + 1] = 1
    month_day[229] = 2
    years = np.arange(10_001)
    leap = ((years % 4 == 0) & (years % 100 != 0)) | (years % 400 == 0)
    year_ok = (years >= 1) & (years <= 9999)
    return pair, month_day, leap, year_ok


_PAIR, _MONTH_DAY, _LEAP, _YEAR_OK = _date_tables()


def _ymd(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """YYYYMMDD bytes, shape (..., 8) with the last axis contiguous -> (year, month, day, ok) of shape
    (...): ok = 8 digits and a real calendar day. Table lookups on digit pairs: no division per value."""
    p = _PAIR[raw.view("<u2")]  # a non-digit pair is 10000: it pushes year or MMDD out of range
    y = np.minimum(p[..., 0] * 100 + p[..., 1], 10_000)
    md = np.minimum(p[..., 2] * 100 + p[..., 3], 10_000)
    kind = _MONTH_DAY[md]
    ok = _YEAR_OK[y] & ((kind == 1) | ((kind == 2) & _LEAP[y]))
    return y, md // 100, md % 100, ok


def _days(y: np.ndarray, m: np.ndarray, day: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (days from civil, H. Hinnant; all integer), 0 where not ok."""
    yy = y - (m <= 2)
    era = yy // 400
    yoe = yy - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return np.where(ok, era * 146097 + doe - 719468, 0).astype(np.int32)


def _dates(raw: np.ndarray, blank: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """(n, 8) YYYYMMDD bytes -> (date32 array, bad mask). Blank -> NULL, not bad. Calendar-checked."""
    n = raw.shape[0]
    y, m, day, ok = _ymd(raw)
    bitmap, nulls = _validity(ok)
    arr = pa.Array.from_buffers(pa.date32(), n, [bitmap, pa.py_buffer(_days(y, m, day, ok))], null_count=nulls)
    return arr, ~ok & ~blank


_NUM_BYTES = np.zeros(256, dtype=bool)
_NUM_BYTES[list(b"0123456789 +-.")] = True


def _numbers(col: _Col, raw: np.ndarray, latin1: np.ndarray | None, *,
             text: bool = False) -> tuple[pa.Array, np.ndarray | None]:
    """NUM column -> (typed array, or with `text` the trimmed strings, which PostgreSQL parses to the
    same values; bad mask or None)."""
    trimmed = pc.ascii_trim_whitespace(_strings(raw, latin1))
    blank = _lengths(trimmed) == 0
    valued = _with_nulls(trimmed, ~blank)
    if _NUM_BYTES[raw].all():  # only digits, blanks, signs, points: let Arrow's cast parse and check
        try:
            typed = valued.cast(col.arrow)
            return (valued if text else typed), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # a misplaced sign or point, too many digits or decimals: find which
    match = pc.fill_null(pc.match_substring_regex(valued, col.regex), True).to_numpy(zero_copy_only=False)
    good = _with_nulls(valued, match & ~blank) if not match.all() else valued
    bad = ~match if not match.all() else None
    if text:
        return good, bad  # PostgreSQL takes the leading "+" itself
    good = pc.replace_substring_regex(good, r"^\+", "")
    return good.cast(col.arrow), bad


def _convert(col: _Col, raw: np.ndarray, latin1: np.ndarray | None, *,
             text: bool = False) -> tuple[pa.Array, np.ndarray | None]:
    """One column of n records -> (typed array, bad mask or None when nothing is bad). With `text`:
    NUM and DATE stay strings (checked, trimmed) for COPY text instead of being converted."""
    odd = latin1 is not None and bool(latin1.any())
    if col.type == "CHAR":
        if col.width == 1 and not odd:
            arr = _strings(raw, None)
            return _with_nulls(arr, raw[:, 0] != SPACE), None
        trimmed = pc.ascii_rtrim_whitespace(_strings(raw, latin1))
        return _with_nulls(trimmed, _lengths(trimmed) > 0), None
    if col.type == "NUM":
        return _numbers(col, raw, latin1, text=text)
    if col.width == 8 and not odd:
        blank = _blank(raw)
        if text:  # the 8 digits as they are: no copy, no conversion
            ok = _ymd(raw)[3]
            bad = ~ok & ~blank
            return _with_nulls(_strings(raw, None), ~blank), (bad if bad.any() else None)
        arr, bad = _dates(raw, blank)
        return arr, bad if bad.any() else None
    # a DATE of another width (or with non-ASCII bytes): the trimmed value must be 8 digits
    trimmed = pc.ascii_trim_whitespace(_strings(raw, latin1))
    blank = _lengths(trimmed) == 0
    good = pc.fill_null(pc.match_substring_regex(trimmed, r"^\d{8}$"), False)
    t8 = pc.if_else(good, trimmed, "00000000")
    offsets = np.frombuffer(t8.buffers()[1], np.int32)[t8.offset:t8.offset + len(t8) + 1]
    fixed = np.frombuffer(t8.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 8)
    arr, bad = _dates(fixed, blank)
    if text:
        arr = _with_nulls(_strings(np.ascontiguousarray(fixed), None), ~blank)
    return arr, bad if bad.any() else None


# Text COPY: these bytes are escaped in CHAR values (`"` because Arrow's unquoted CSV writer refuses it;
# PostgreSQL reads the octal escape back as `"`). Backslash first.
_TEXT_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ('"', "\\042"))
_ESCAPED = np.zeros(256, dtype=bool)
_ESCAPED[[ord(c) for c, _ in _TEXT_ESCAPES]] = True


def _escape_text(arr: pa.Array) -> pa.Array:
    for plain, escaped in _TEXT_ESCAPES:
        arr = pc.replace_substring(arr, plain, escaped)
    return arr


def _show(value: bytes) -> str:
    """A raw value for a reject reason: printable ASCII as is, any other byte as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in value.strip(b" "))


# --------------------------------------------------------------------------------------------- reading

_TEXT_OPTIONS = pacsv.WriteOptions(include_header=False, batch_size=1 << 16, quoting_style="none", delimiter="\t")


class FwfReader:
    """Iterate to get `FwfBatch`es (typed), or `copy_blocks()` for COPY text; `stats` is complete once
    the iteration has finished."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[ColumnLike], record_length: int, *,
                 block_size: int = DEFAULT_BLOCK_SIZE, non_ascii: str = "latin1") -> None:
        self.path = Path(path)
        self.source = str(path)
        self.record_length = int(record_length)
        self.columns = _prepare(columns, self.record_length, self.source)
        self.block_size = max(int(block_size), 1)
        if non_ascii not in NON_ASCII:
            raise FwfError(f"non_ascii must be one of {', '.join(NON_ASCII)}, got {non_ascii!r}", source=self.source)
        self.non_ascii = non_ascii
        self.schema = pa.schema([pa.field(c.name, c.arrow) for c in self.columns])
        self.stats = FwfStats(path=self.source, record_length=self.record_length)
        # 1-byte CHAR and 8-byte DATE columns (dozens in MedPAR) are converted as groups: one numpy
        # pass for all of them instead of a dozen small calls per column
        self._chars1 = [i for i, c in enumerate(self.columns) if c.type == "CHAR" and c.width == 1]
        self._dates8 = [i for i, c in enumerate(self.columns) if c.type == "DATE" and c.width == 8]

    # ---------------------------------------------------------------------------------- file level
    def _open(self) -> io.BufferedReader:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise FwfError("fixed-width data file not found", source=self.source) from None
        if not self.path.is_file():
            raise FwfError("not a regular file", source=self.source)
        if size == 0:
            raise FwfError("fixed-width data file is empty (0 bytes, no records)", source=self.source)
        return self.path.open("rb", buffering=0)

    def _detect(self, head: np.ndarray) -> str:
        nl = np.flatnonzero(head == LF)
        if nl.size == 0:
            return "none"
        return "CRLF" if nl[0] > 0 and head[nl[0] - 1] == CR else "LF"

    def __iter__(self) -> Iterator[FwfBatch]:
        return self._run(self._block)

    def copy_blocks(self, *, record_numbers: bool = True) -> Iterator[FwfCopyBlock]:
        """The file as PostgreSQL COPY text, block by block: `COPY t ([record_number,] <columns>) FROM
        STDIN (FORMAT text, DELIMITER E'\\t', NULL '')`. Same records, checks and rejects as iterating."""
        return self._run(lambda *block: self._copy_block(*block, record_numbers=record_numbers))

    def _run(self, convert) -> Iterator:
        t0 = time.perf_counter()
        for block in self._scan():
            out = convert(*block)
            if out is not None:
                self.stats.batches += 1
                self.stats.seconds += time.perf_counter() - t0
                yield out
                t0 = time.perf_counter()
        self.stats.seconds += time.perf_counter() - t0

    def _scan(self) -> Iterator[tuple[bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(block bytes, the same as uint8, line starts, line ends without terminator, line numbers)."""
        stats = self.stats
        with self._open() as f:
            carry = b""
            line_no = 0  # lines consumed so far
            first = True
            while True:
                chunk = f.read(self.block_size)
                eof = not chunk
                stats.bytes += len(chunk)
                data = carry + chunk if carry else chunk
                if first:
                    if not data:
                        raise FwfError("fixed-width data file is empty (0 bytes, no records)", source=self.source)
                    want = max(64 * (self.record_length + 2), 1 << 16)  # enough to see a line end
                    head = np.frombuffer(data[:want], np.uint8)
                    if not eof and np.flatnonzero(head == LF).size == 0 and len(data) < want:
                        carry = data  # too little to decide yet
                        continue
                    stats.terminator = self._detect(head)
                    first = False
                if not data:
                    break
                buf = np.frombuffer(data, np.uint8)
                if stats.terminator == "none":
                    stride = self.record_length
                    n = len(data) // stride if not eof else -(-len(data) // stride)
                    cut = min(n * stride, len(data))
                    starts = np.arange(n, dtype=np.int64) * stride
                    ends = np.minimum(starts + stride, cut)
                    numbers = line_no + 1 + np.arange(n, dtype=np.int64)
                else:
                    nl = np.flatnonzero(buf == LF)
                    if eof:
                        cut = len(data)
                        ends = nl if (nl.size and nl[-1] == len(data) - 1) else np.append(nl, len(data))
                    elif nl.size == 0:
                        carry = data  # a line longer than a block: read on
                        continue
                    else:
                        cut = int(nl[-1]) + 1
                        ends = nl
                    starts = np.empty_like(ends)
                    starts[0] = 0
                    starts[1:] = ends[:-1] + 1
                    numbers = line_no + 1 + np.arange(ends.size, dtype=np.int64)
                    if stats.terminator == "CRLF":
                        has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == CR)
                        ends = ends - has_cr
                line_no += int(numbers.size)
                carry = data[cut:]
                yield data, buf, starts, ends, numbers
                if eof:
                    break

    # --------------------------------------------------------------------------------- block level
    def _records(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Reject]] | None:
        """The records of the right length as an (n, record_length) byte matrix, their starts and
        numbers, and the rejects for the others; None when the block holds only empty lines."""
        stats, rl = self.stats, self.record_length
        lengths = ends - starts
        empty = lengths == 0
        if empty.any():
            stats.empty_lines += int(empty.sum())
            keep = ~empty
            starts, ends, numbers, lengths = starts[keep], ends[keep], numbers[keep], lengths[keep]
        if starts.size == 0:
            return None
        stats.records += int(starts.size)
        good = lengths == rl
        rejects: list[Reject] = []
        if not good.all():
            for s, e, num in zip(starts[~good].tolist(), ends[~good].tolist(), numbers[~good].tolist(), strict=True):
                kind = "short_record" if e - s < rl else "long_record"
                rejects.append(Reject(num, kind, bytes(buf[s:e]), kind))
            lens, counts = np.unique(lengths[~good], return_counts=True)
            for ln, ct in zip(lens.tolist(), counts.tolist(), strict=True):
                stats.reject_lengths[ln] = stats.reject_lengths.get(ln, 0) + ct
            starts, numbers = starts[good], numbers[good]
        n = int(starts.size)
        if n == 0:
            mat = np.zeros((0, rl), np.uint8)
        elif n == 1 or (np.all(np.diff(starts) == starts[1] - starts[0]) and starts[1] - starts[0] >= rl):
            stride = rl if n == 1 else int(starts[1] - starts[0])
            s0 = int(starts[0])  # evenly spaced records (the normal case): a view, no copy
            mat = np.lib.stride_tricks.as_strided(buf[s0:], shape=(n, rl), strides=(stride, 1), writeable=False)
        else:
            mat = sliding_window_view(buf, rl)[starts]  # after a rejected line: gather the good ones
        return mat, starts, numbers, rejects

    def _columns(self, data: bytes, mat: np.ndarray, *, text: bool) -> tuple[list[pa.Array], list[tuple]]:
        """Every column converted (typed, or strings for COPY text) and the bad masks in column order:
        [(column, mask, raw, reason tag, reject kind)]."""
        stats, n = self.stats, mat.shape[0]
        nonascii = bool(n) and not data.isascii() and bool((mat >= 0x80).any())
        nul = special = False
        if text and n:
            nul = b"\x00" in data
            # bytes that COPY text must escape; line ends can only be inside a record if not a terminator
            special = any(c in data for c in (b"\\", b'"', b"\t")) or (
                (b"\r" in data and bool((mat == CR).any())) or (self.stats.terminator == "none" and b"\n" in data))
        arrays: list[pa.Array | None] = [None] * len(self.columns)
        bads: list[tuple] = []
        if n and not nonascii:
            self._chars1_group(mat, arrays, bads, nul=nul, special=special)
            self._dates8_group(mat, arrays, bads, text=text)
        # sparse layouts (25 diagnosis slots of which most records fill a few) have whole columns of
        # blanks in a block: all NULL, nothing to convert; the first record tells which to check
        maybe_blank = mat[0] == SPACE if n else None
        for i, col in enumerate(self.columns):
            if arrays[i] is not None:
                continue
            if n and maybe_blank[col.offset:col.offset + col.width].all() and \
                    (mat[:, col.offset:col.offset + col.width] == SPACE).all():
                arrays[i] = pa.nulls(n, pa.string() if text else col.arrow)
                continue
            raw = np.ascontiguousarray(mat[:, col.offset:col.offset + col.width])
            latin1 = None
            if nonascii:
                latin1 = (raw >= 0x80).any(axis=1)
                stats.non_ascii_values += int(latin1.sum())
            arr, bad = _convert(col, raw, latin1, text=text)
            if bad is not None:
                bads.append((i, col, bad, raw, "bad_value", "invalid_date" if col.type == "DATE" else "non_numeric"))
            if col.type == "CHAR":
                if latin1 is not None and self.non_ascii == "reject" and latin1.any():
                    bads.append((i, col, latin1, raw, "non_ascii", "non_ascii"))
                if nul:
                    zero = (raw == 0).any(axis=1)
                    if zero.any():
                        bads.append((i, col, zero, raw, "nul_byte", "nul_byte"))
                if special and _ESCAPED[raw].any():
                    arr = _escape_text(arr)
            arrays[i] = arr
        bads.sort(key=lambda b: b[0])
        return arrays, [b[1:] for b in bads]

    def _chars1_group(self, mat: np.ndarray, arrays: list, bads: list, *, nul: bool, special: bool) -> None:
        """The 1-byte CHAR columns of an ASCII block: a blank (space) is NULL."""
        if len(self._chars1) < 2:
            return
        n = mat.shape[0]
        group = np.ascontiguousarray(mat.T[[self.columns[i].offset for i in self._chars1]])  # a row per column
        valid = group != SPACE
        bitmaps = np.packbits(valid, axis=1, bitorder="little")
        nulls = n - np.count_nonzero(valid, axis=1)
        offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32))
        for j, i in enumerate(self._chars1):
            bitmap = pa.py_buffer(bitmaps[j]) if nulls[j] else None
            arr = pa.Array.from_buffers(pa.string(), n, [bitmap, offsets, pa.py_buffer(group[j])],
                                        null_count=int(nulls[j]))
            if nul and (zero := group[j] == 0).any():
                bads.append((i, self.columns[i], zero, group[j].reshape(n, 1), "nul_byte", "nul_byte"))
            if special and _ESCAPED[group[j]].any():
                arr = _escape_text(arr)
            arrays[i] = arr

    def _dates8_group(self, mat: np.ndarray, arrays: list, bads: list, *, text: bool) -> None:
        """The 8-byte DATE columns of an ASCII block, checked together (as `_convert` does one)."""
        k = len(self._dates8)
        if k < 2:
            return
        n = mat.shape[0]
        group = np.empty((k, n, 8), np.uint8)  # each column's (n, 8) bytes, contiguous
        for j, i in enumerate(self._dates8):
            group[j] = mat[:, self.columns[i].offset:self.columns[i].offset + 8]
        blank = group.view("<u8")[..., 0] == _BLANK8
        y, m, day, ok = _ymd(group)
        bad = ~ok & ~blank
        valid = ~blank if text else ok
        days = None if text else _days(y, m, day, ok)
        bitmaps = np.packbits(valid, axis=1, bitorder="little")
        nulls = n - np.count_nonzero(valid, axis=1)
        offsets = pa.py_buffer(np.arange(0, 8 * n + 1, 8, dtype=np.int32))
        for j, i in enumerate(self._dates8):
            bitmap = pa.py_buffer(bitmaps[j]) if nulls[j] else None
            raw = group[j]
            if text:  # the 8 digits as they are, as in `_convert`
                arr = pa.Array.from_buffers(pa.string(), n, [bitmap, offsets, pa.py_buffer(raw)], null_count=int(nulls[j]))
            else:
                arr = pa.Array.from_buffers(pa.date32(), n, [bitmap, pa.py_buffer(days[j])], null_count=int(nulls[j]))
            if bad[j].any():
                bads.append((i, self.columns[i], bad[j], raw, "bad_value", "invalid_date"))
            arrays[i] = arr

    def _reject_values(self, buf: np.ndarray, starts: np.ndarray, numbers: np.ndarray, bads: list[tuple],
                       rejects: list[Reject]) -> pa.Array | None:
        """Add a reject per record with a bad value (all its bad columns in the reason); the mask of the
        records to keep, or None when all are good."""
        if not bads:
            return None
        bad_any = np.zeros(len(numbers), dtype=bool)
        for _, bad, _, _, _ in bads:
            bad_any |= bad
        for r in np.flatnonzero(bad_any).tolist():
            parts, kind = [], ""
            for col, bad, raw, tag, col_kind in bads:
                if bad[r]:
                    if tag == "bad_value":
                        value = bytes(raw[r]).decode("latin-1").strip().replace("\x00", "\\x00")
                    else:
                        value = _show(bytes(raw[r]))
                    parts.append(f"{tag}:{col.name}:{value}")
                    kind = kind or col_kind
            s = int(starts[r])
            rejects.append(Reject(int(numbers[r]), "; ".join(parts), bytes(buf[s:s + self.record_length]), kind))
        rejects.sort(key=lambda j: j.record)
        return pa.array(~bad_any)

    def _count(self, rejects: list[Reject], good: int) -> None:
        for j in rejects:
            self.stats.rejected[j.kind] = self.stats.rejected.get(j.kind, 0) + 1
        self.stats.good += good

    def _block(self, data: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               numbers: np.ndarray) -> FwfBatch | None:
        records = self._records(buf, starts, ends, numbers)
        if records is None:
            return None
        mat, starts, numbers, rejects = records
        arrays, bads = self._columns(data, mat, text=False)
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        record_numbers = pa.array(numbers, pa.int64())
        keep = self._reject_values(buf, starts, numbers, bads, rejects)
        if keep is not None:
            table = table.filter(keep)
            record_numbers = record_numbers.filter(keep)
        self._count(rejects, table.num_rows)
        return FwfBatch(record_numbers, table, rejects)

    def _copy_block(self, data: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, numbers: np.ndarray,
                    *, record_numbers: bool) -> FwfCopyBlock | None:
        records = self._records(buf, starts, ends, numbers)
        if records is None:
            return None
        mat, starts, numbers, rejects = records
        arrays, bads = self._columns(data, mat, text=True)
        names = [c.name for c in self.columns]
        if record_numbers:
            arrays.insert(0, pa.array(numbers, pa.int64()).cast(pa.string()))
            names.insert(0, "record_number")
        table = pa.Table.from_arrays(arrays, names=names)
        keep = self._reject_values(buf, starts, numbers, bads, rejects)
        if keep is not None:
            table = table.filter(keep)
        self._count(rejects, table.num_rows)
        sink = pa.BufferOutputStream()
        if table.num_rows:
            pacsv.write_csv(table, sink, _TEXT_OPTIONS)
        return FwfCopyBlock(memoryview(sink.getvalue()), table.num_rows, rejects)


def read_fwf(path: str | os.PathLike[str], columns: Sequence[ColumnLike], record_length: int, *,
             block_size: int = DEFAULT_BLOCK_SIZE, non_ascii: str = "latin1") -> FwfReader:
    """`for batch in (reader := read_fwf(...)): ...` then `reader.stats`."""
    return FwfReader(path, columns, record_length, block_size=block_size, non_ascii=non_ascii)


# ------------------------------------------------------------------------------------------------ CSV

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, batch_size=1 << 16, quoting_style="all_valid")


def batch_to_csv(table: pa.Table) -> bytes:
    """CSV for `COPY ... (FORMAT csv)`: no header; every non-NULL value quoted (Arrow's `all_valid`
    style, 3x faster than `needed`, and safe for commas, quotes and newlines in CHAR values); NULL as an
    empty unquoted field, which COPY reads as NULL; dates as YYYY-MM-DD, decimals as plain text."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, _CSV_OPTIONS)
    return sink.getvalue().to_pybytes()

