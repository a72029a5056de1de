"""File Transfer Summary (FTS) parser for ResDAC Medicare fixed-width files (2011 and later).

An FTS is a text file shipped beside each `<base>.dat` (or `<base>_NNN.dat` parts). It holds

- a header of `Key: Value` lines (`Columns in File`, `Exact File Quantity (Rows)`,
  `Exact File Record Length (Bytes in Variable Block)` or `Maximum Possible Record Length`, ...);
- a separator line: dash groups separated by single spaces, the first line that starts with `---` and
  contains 18+ dashes. Its seven groups give the character positions of the seven fields of the
  column table below it: column number, long name, short (SAS) name, type (CHAR/NUM/DATE),
  start (1-based), width (`10` or `12.2`) and description (open-ended);
- column rows, until a blank line, a line starting `Note:`, or a line containing `End of Document`.

Rows are cut at the separator's positions. A row that does not fit them (a long short name pushing
into the type field, as happens in real files) is re-read by tokens (number, long name, short
name, type, start, width, description) with a warning naming the file and line; if that fails too,
`FtsError` says which file, which line and what was expected.

The layout is validated: unique names, contiguous columns (each start = previous start + width,
first start 1 — that is how ResDAC writes them), no column past the record length, an exact record
length (`Exact File Record Length ...`) = sum of widths, or, when only `Maximum Possible Record Length`
is stated, the sum of widths within it (the record length is then the sum; a warning if less),
`Columns in File` = number of columns parsed. Header numbers may carry thousands separators.

Plain Python (no Airflow). `FtsLayout.to_dict()/from_dict()` give a JSON-safe form to store.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.common.errors import ClaimsflowError
from include.common.files import decode_text
from include.db.postgres import identifier_from_filename, validate_identifier

log = logging.getLogger("claimsflow.fts")

TYPES = ("CHAR", "NUM", "DATE")
N_GROUPS = 7
LENGTH_KEY = "Exact File Record Length (Bytes in Variable Block)"
MAX_LENGTH_KEY = "Maximum Possible Record Length"
ROWS_KEY = "Exact File Quantity (Rows)"
COLUMNS_KEY = "Columns in File"
FILE_TYPES = ("mbsf_abcd_summary", "mbsf_ab_summary", "mbsf_d_cmpnts", "medpar_all_file")  # longest first
LAYOUT_VERSION = 1

_SEPARATOR_MIN = "-" * 18
_GROUP = re.compile(r"-+")
_INT = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")
_COUNT = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\s+[^\d\s].*)?")
_ROWS_IN_LINE = re.compile(r"\((\d{1,3}(?:,\d{3})+|\d+) Rows\)", re.IGNORECASE)
_WIDTH = re.compile(r"(\d+)(?:\.(\d*))?")
# The token fallback: number, long name (may hold spaces, may be empty), short name, type, start, width,
# description. Anchored on the type keyword so a long name with spaces still parses.
_ROW_TOKENS = re.compile(
    r"^\s*(?P<order>\d+)\s+(?:(?P<long>.*?)\s+)?(?P<short>\S+)\s+(?P<type>CHAR|NUM|DATE)\s+"
    r"(?P<start>[\d,]+)\s+(?P<width>\d+(?:\.\d*)?)(?:\s+(?P<desc>.*?))?\s*$",
    re.IGNORECASE,
)
_YEAR_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_PART = re.compile(r"_(\d+)$")


class FtsError(ClaimsflowError):
    """An FTS file (or the files beside it) cannot be read as a valid layout."""


# -------------------------------------------------------------------------------------------- model

@dataclass(frozen=True)
class FtsColumn:
    """One column of the table: as stated in the FTS (start is 1-based)."""

    order: int
    name: str  # the short (SAS) name, as written in the file
    long_name: str
    type: str  # CHAR | NUM | DATE
    start: int  # 1-based, as stated
    width: int
    scale: int  # digits after the point of e.g. `12.2`, else 0
    description: str
    line: int  # line number in the FTS

    @property
    def offset(self) -> int:
        """0-based start of the field in a record."""
        return self.start - 1

    @property
    def end(self) -> int:
        """0-based exclusive end of the field in a record."""
        return self.start - 1 + self.width

    @property
    def sql_type(self) -> str:
        if self.type == "CHAR":
            return f"varchar({self.width})"
        if self.type == "DATE":
            return "date"
        if self.type == "NUM":
            if self.scale:
                return f"numeric({self.width},{self.scale})"
            if self.width > 18:  # more digits than a bigint holds
                return f"numeric({self.width})"
            return "bigint" if self.width > 9 else "integer"
        raise FtsError(f"unknown column type {self.type!r} of column {self.name}", line=self.line)

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "name": self.name, "long_name": self.long_name, "type": self.type,
                "start": self.start, "width": self.width, "scale": self.scale, "description": self.description,
                "line": self.line}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FtsColumn:
        return cls(order=int(d["order"]), name=str(d["name"]), long_name=str(d.get("long_name", "")),
                   type=str(d["type"]), start=int(d["start"]), width=int(d["width"]), scale=int(d.get("scale", 0)),
                   description=str(d.get("description", "")), line=int(d.get("line", 0)))


@dataclass(frozen=True)
class FtsLayout:
    """The parsed, validated layout of one fixed-width file (all its parts)."""

    path: str
    columns: tuple[FtsColumn, ...]
    record_length: int
    record_count: int | None
    declared_columns: int | None
    metadata: dict[str, str] = field(hash=False)
    length_key: str  # the header key the record length came from
    misaligned_lines: tuple[int, ...] = ()  # column rows read by tokens instead of positions (warned)

    def column(self, name: str) -> FtsColumn:
        """The column named `name` (short name, case-insensitive); KeyError if absent."""
        wanted = name.casefold()
        for c in self.columns:
            if c.name.casefold() == wanted:
                return c
        raise KeyError(f"{self.path}: no column {name!r}")

    def has_column(self, name: str) -> bool:
        wanted = name.casefold()
        return any(c.name.casefold() == wanted for c in self.columns)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (only str/int/None/list/dict)."""
        return {"version": LAYOUT_VERSION, "path": self.path, "record_length": self.record_length,
                "record_count": self.record_count, "declared_columns": self.declared_columns,
                "length_key": self.length_key, "metadata": dict(self.metadata),
                "misaligned_lines": list(self.misaligned_lines),
                "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FtsLayout:
        version = d.get("version", LAYOUT_VERSION)
        if version != LAYOUT_VERSION:
            raise FtsError(f"stored layout has version {version!r}, expected {LAYOUT_VERSION}",
                           source=str(d.get("path")))
        return cls(path=str(d["path"]), columns=tuple(FtsColumn.from_dict(c) for c in d["columns"]),
                   record_length=int(d["record_length"]),
                   record_count=None if d.get("record_count") is None else int(d["record_count"]),
                   declared_columns=None if d.get("declared_columns") is None else int(d["declared_columns"]),
                   metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
                   length_key=str(d.get("length_key", "")),
                   misaligned_lines=tuple(int(n) for n in d.get("misaligned_lines", ())))


# ------------------------------------------------------------------------------------------ parsing

def parse_fts(path: str | Path) -> FtsLayout:
    """Parse and validate the FTS at `path`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise FtsError(f"cannot read the FTS: {exc.strerror or exc}", source=str(p)) from exc
    return parse_fts_text(decode_text(data), source=str(p))


def _norm_key(key: str) -> str:
    return " ".join(key.split()).casefold()


def _parse_int(text: str) -> int | None:
    text = text.strip()
    return int(text.replace(",", "")) if _INT.fullmatch(text) else None


def _parse_count(text: str) -> int | None:
    """A header number: `1,234`, also with a unit after it (`1,234 bytes`)."""
    m = _COUNT.fullmatch(text.strip())
    return int(m.group(1).replace(",", "")) if m else None


def _split_lines(text: str) -> list[str]:
    """Lines without their terminators (LF, CRLF or lone CR), trailing blanks removed.

    Not `str.splitlines()`: it also splits on form feeds and other separators, which would shift the
    line numbers we report from what an editor shows.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


def _is_separator(line: str) -> bool:
    return line.startswith("---") and _SEPARATOR_MIN in line


def _is_table_end(line: str) -> bool:
    s = line.strip()
    return not s or s[:5].casefold() == "note:" or "end of document" in s.casefold()


@dataclass
class _Header:
    values: dict[str, str] = field(default_factory=dict)  # key as written -> value
    lines: dict[str, int] = field(default_factory=dict)  # normalised key -> line number
    by_norm: dict[str, str] = field(default_factory=dict)  # normalised key -> value

    def add(self, key: str, value: str, line: int) -> None:
        norm = _norm_key(key)
        if not norm or norm in self.by_norm:  # the first statement wins
            return
        self.values[key.strip()] = value.strip()
        self.by_norm[norm] = value.strip()
        self.lines[norm] = line

    def get(self, key: str) -> tuple[str, int] | None:
        norm = _norm_key(key)
        if norm not in self.by_norm:
            return None
        return self.by_norm[norm], self.lines[norm]

    def integer(self, key: str, source: str) -> tuple[int, int] | None:
        found = self.get(key)
        if found is None:
            return None
        value, line = found
        if not value:  # stated without a value: as good as absent
            return None
        number = _parse_count(value)
        if number is None:
            raise FtsError(f"{key!r} should be a whole number (thousands separators allowed), got {value!r}",
                           source=source, line=line)
        return number, line


def _row_fixed(line: str, spans: list[tuple[int, int | None]]) -> list[str]:
    """Cells cut at the separator positions; a cell runs up to the next group (the gap included)."""
    cells = []
    for i, (start, _end) in enumerate(spans):
        stop = spans[i + 1][0] if i + 1 < len(spans) else None
        cells.append(line[start:stop].strip())
    return cells


def _straddles(line: str, spans: list[tuple[int, int | None]]) -> bool:
    """True if a value crosses a field boundary: a non-blank in the gap before the next group."""
    for (_start, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        if end is None:
            continue
        gap = line[end:next_start]
        if gap.strip():
            return True
    return False


def _cells_ok(cells: list[str]) -> bool:
    order, _long, short, type_, start, width, _desc = cells
    return (order.isdigit() and bool(short) and type_.upper() in TYPES and _parse_int(start) is not None
            and _WIDTH.fullmatch(width) is not None)


def _make_column(cells: list[str], line_no: int, source: str) -> FtsColumn:
    order, long_name, short, type_, start_text, width_text, desc = cells
    m = _WIDTH.fullmatch(width_text)
    start = _parse_int(start_text)
    if not order.isdigit():
        raise FtsError(f"column number {order!r} is not a number", source=source, line=line_no)
    if start is None:
        raise FtsError(f"start position {start_text!r} of column {short or order} is not a number",
                       source=source, line=line_no)
    if m is None:
        raise FtsError(f"width {width_text!r} of column {short or order} is not a number like 10 or 12.2",
                       source=source, line=line_no)
    type_u = type_.upper()
    if type_u not in TYPES:
        raise FtsError(f"unknown type {type_!r} of column {short or order}: expected one of {', '.join(TYPES)}",
                       source=source, line=line_no)
    width = int(m.group(1))
    scale = int(m.group(2)) if m.group(2) else 0
    if not short:
        raise FtsError(f"column {order} has no short name", source=source, line=line_no)
    if start < 1:
        raise FtsError(f"start position {start} of column {short} must be 1 or more (positions are 1-based)",
                       source=source, line=line_no)
    if width < 1:
        raise FtsError(f"width of column {short} must be 1 or more, got {width_text!r}", source=source, line=line_no)
    if scale and type_u != "NUM":
        raise FtsError(f"column {short} of type {type_u} has a decimal width {width_text!r}; only NUM may",
                       source=source, line=line_no)
    if scale > width:
        raise FtsError(f"column {short}: {scale} decimals do not fit a width of {width}", source=source, line=line_no)
    return FtsColumn(order=int(order), name=short, long_name=long_name, type=type_u, start=start, width=width,
                     scale=scale, description=desc, line=line_no)


def _parse_row(line: str, line_no: int, spans: list[tuple[int, int | None]], source: str,
               misaligned: list[int]) -> FtsColumn:
    cells = _row_fixed(line, spans)
    if _cells_ok(cells) and not _straddles(line, spans):
        return _make_column(cells, line_no, source)
    m = _ROW_TOKENS.match(line)
    if m is None:
        # Neither by position nor by tokens: report what the positions gave (the likeliest culprit).
        _make_column(cells, line_no, source)  # raises with the specific reason when a cell is bad
        raise FtsError(f"cannot read column row {line.strip()!r}: expected number, long name, short name, "
                       f"type ({'/'.join(TYPES)}), start, width, description", source=source, line=line_no)
    token_cells = [m["order"], (m["long"] or "").strip(), m["short"], m["type"], m["start"], m["width"],
                   (m["desc"] or "").strip()]
    column = _make_column(token_cells, line_no, source)
    log.warning("%s, line %d: column row does not fit the separator's positions (a value runs into the next "
                "field); read it by tokens as %s %s start %d width %s", source, line_no, column.name, column.type,
                column.start, m["width"])
    misaligned.append(line_no)
    return column


def parse_fts_text(text: str, source: str = "<fts>") -> FtsLayout:
    """Parse and validate FTS `text`; `source` names it in errors and warnings."""
    lines = _split_lines(text)
    if not any(line.strip() for line in lines):
        raise FtsError("the FTS is empty: expected a header of 'Key: Value' lines and a column table",
                       source=source, line=1)

    header = _Header()
    sep_index = None
    for i, line in enumerate(lines):
        if _is_separator(line):
            sep_index = i
            break
        if ":" in line:
            key, value = line.split(":", 1)
            header.add(key, value, i + 1)
    if sep_index is None:
        raise FtsError(f"no column table: expected a separator line of {N_GROUPS} dash groups separated by single "
                       f"spaces (starting with '---', 18+ dashes in a row) before the column rows",
                       source=source, line=len(lines))

    sep = lines[sep_index]
    sep_line = sep_index + 1
    groups = list(_GROUP.finditer(sep))
    if len(groups) != N_GROUPS:
        raise FtsError(f"the column table separator has {len(groups)} dash groups, expected {N_GROUPS} (column "
                       f"number, long name, short name, type, start, width, description)",
                       source=source, line=sep_line)
    if sep.replace("-", "").strip():
        raise FtsError("the column table separator may hold only dashes and spaces", source=source, line=sep_line)
    spans: list[tuple[int, int | None]] = [(g.start(), g.end()) for g in groups]
    spans[-1] = (spans[-1][0], None)  # the description is open-ended

    columns: list[FtsColumn] = []
    misaligned: list[int] = []
    for i in range(sep_index + 1, len(lines)):
        line = lines[i]
        if _is_table_end(line):
            break
        columns.append(_parse_row(line, i + 1, spans, source, misaligned))
    if not columns:
        raise FtsError("the column table has no rows after its separator", source=source, line=sep_line)

    _validate_columns(columns, source)
    record_length, length_key = _record_length(header, columns, source, sep_line)

    declared = header.integer(COLUMNS_KEY, source)
    if declared is not None and declared[0] != len(columns):
        raise FtsError(f"{COLUMNS_KEY!r} says {declared[0]} columns but the table has {len(columns)} "
                       f"(lines {columns[0].line}-{columns[-1].line})", source=source, line=declared[1])
    rows = header.integer(ROWS_KEY, source)
    if rows is None:  # a variant: `<file name> (1,234 Rows)` somewhere in the header
        for i, line in enumerate(lines[:sep_index]):
            m = _ROWS_IN_LINE.search(line)
            if m:
                rows = (int(m.group(1).replace(",", "")), i + 1)
                break
    for expected_order, c in enumerate(columns, 1):
        if c.order != expected_order:
            log.warning("%s, line %d: column %s is numbered %d, expected %d (numbers are informative only)",
                        source, c.line, c.name, c.order, expected_order)
            break

    return FtsLayout(path=source, columns=tuple(columns), record_length=record_length,
                     record_count=None if rows is None else rows[0],
                     declared_columns=None if declared is None else declared[0],
                     metadata=dict(header.values), length_key=length_key, misaligned_lines=tuple(misaligned))


def _validate_columns(columns: list[FtsColumn], source: str) -> None:
    seen: dict[str, FtsColumn] = {}
    for c in columns:
        key = c.name.casefold()
        if key in seen:
            raise FtsError(f"duplicate column name {c.name!r} (also column {seen[key].order}, line {seen[key].line}; "
                           f"names are compared case-insensitively)", source=source, line=c.line)
        seen[key] = c
    expected = 1
    previous: FtsColumn | None = None
    for c in columns:
        if c.start < expected:
            assert previous is not None
            raise FtsError(f"column {c.name} (start {c.start}, width {c.width}) overlaps column {previous.name} "
                           f"(positions {previous.start}-{previous.start + previous.width - 1})",
                           source=source, line=c.line)
        if c.start > expected:
            after = f"after column {previous.name}" if previous else "before the first column"
            raise FtsError(f"gap {after}: column {c.name} starts at {c.start} but positions {expected}-{c.start - 1} "
                           f"are not described (columns must be contiguous: each start = previous start + width)",
                           source=source, line=c.line)
        expected = c.start + c.width
        previous = c


def _record_length(header: _Header, columns: list[FtsColumn], source: str, sep_line: int) -> tuple[int, str]:
    """The record length: the exact one stated must equal the sum of widths; a stated maximum must
    cover it (the record length is then the sum of widths); neither stated is an error."""
    total = columns[-1].start + columns[-1].width - 1  # = sum of widths, the columns being contiguous
    for key in (LENGTH_KEY, MAX_LENGTH_KEY):
        stated = header.integer(key, source)
        if stated is None:
            continue
        length, line = stated
        for c in columns:
            if c.start + c.width - 1 > length:
                raise FtsError(f"column {c.name} (positions {c.start}-{c.start + c.width - 1}) runs past the record "
                               f"length {length} stated by {key!r} on line {line}", source=source, line=c.line)
        if length != total:
            if key == LENGTH_KEY:
                raise FtsError(f"{key!r} states a record length of {length} bytes, but the column widths add up "
                               f"to {total}", source=source, line=line)
            log.warning("%s, line %d: %r is %d but the column widths add up to %d: records are taken to be %d "
                        "bytes long", source, line, key, length, total, total)
        return total, key
    raise FtsError(f"no record length: expected a header line {LENGTH_KEY!r} (or {MAX_LENGTH_KEY!r}) before the "
                   f"column table", source=source, line=sep_line)


# ------------------------------------------------------------------------------------ file discovery

@dataclass(frozen=True)
class FtsFile:
    """An FTS and the data files it describes (one `<base>.dat` or `<base>_NNN.dat` parts, in order)."""

    fts: Path
    data: tuple[Path, ...]
    year: int

    @property
    def base(self) -> str:
        return self.fts.stem

    @property
    def table(self) -> str:
        return table_name_for(self.fts)


def _year_of_folder(fts: Path) -> int:
    folder = fts.parent.name
    if not re.fullmatch(r"\d{4}", folder):
        raise FtsError(f"the folder {folder!r} of an FTS must be named by its 4-digit year (e.g. medicare/2015/)",
                       source=str(fts))
    return int(folder)


def _year_in_name(name: str) -> int | None:
    found = _YEAR_IN_NAME.findall(Path(name).stem)
    return int(found[-1]) if found else None


def _data_files(fts: Path, siblings: Iterable[Path]) -> tuple[Path, ...]:
    base = fts.stem
    single: list[Path] = []
    parts: list[tuple[int, Path]] = []
    for p in siblings:
        if p.suffix.lower() != ".dat" or not p.is_file():
            continue
        stem = p.stem
        if stem == base:
            single.append(p)
        elif stem.startswith(base):
            m = _PART.fullmatch(stem[len(base):])
            if m:
                parts.append((int(m.group(1)), p))
    if single and parts:
        raise FtsError(f"both {single[0].name} and numbered parts ({parts[0][1].name}, ...) exist for one FTS: "
                       f"which is the data?", source=str(fts))
    if single:
        return tuple(single[:1])
    return tuple(p for _, p in sorted(parts, key=lambda t: (t[0], t[1].name)))


def find_fts_files(folder: str | Path) -> list[FtsFile]:
    """Every `*.fts` under `folder` (recursively) with its data files and year, sorted by year and name.

    The immediate parent folder of each FTS must be its 4-digit year, and a year in the file name
    must agree. An FTS without data files is returned with `data=()` and a warning.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FtsError("not a folder", source=str(root))
    found: list[FtsFile] = []
    for fts in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".fts"):
        year = _year_of_folder(fts)
        named = _year_in_name(fts.name)
        if named is not None and named != year:
            raise FtsError(f"the file name says {named} but it lies in the folder {year}", source=str(fts))
        data = _data_files(fts, fts.parent.iterdir())
        if not data:
            log.warning("%s: no data file %s.dat or %s_NNN.dat beside this FTS", fts, fts.stem, fts.stem)
        found.append(FtsFile(fts=fts, data=data, year=year))
    found.sort(key=lambda f: (f.year, f.fts.name))
    return found


def table_name_for(fts_path: str | Path) -> str:
    """A safe table name for the file: `<ResDAC type>_<year>` (`medpar_all_file_2015`), or, for a name
    of another kind, one derived from the whole file name (validated either way)."""
    p = Path(fts_path)
    name = p.name.lower()
    for prefix in FILE_TYPES:
        if name.startswith(prefix):
            year = _year_in_name(p.name)
            if year is None and re.fullmatch(r"\d{4}", p.parent.name):
                year = int(p.parent.name)
            if year is None:
                raise FtsError(f"cannot tell the year of this {prefix} file: neither its name nor its folder "
                               f"holds one", source=str(p))
            return validate_identifier(f"{prefix}_{year}", "table name")
    return validate_identifier(identifier_from_filename(p.name), "table name")
