"""SAS7BDAT files (the 1999-2010 Medicare years) read in chunks with pyreadstat, the file's own
metadata giving the schema.

- Column kinds come from the SAS *format* only: DATE/YYMMDD/MMDDYY/… → date, DATETIME → timestamp,
  TIME → time; other numbers stay numeric. A numeric date without a format (the NSAPH preprocessed
  files: SAS day numbers, or YYYYMMDD numbers before 2006) stays a number — the processing step
  converts it, knowing which form each year uses. Nothing is guessed from column names.
- The file's encoding is honoured (pyreadstat reads it from the header: e.g. WINDOWS-1252); an
  `encoding` override is available for files that declare the wrong one.
- Column names are normalised the NSAPH way: lower case, `.` and spaces → `_`, a leading digit gets
  `c_`, an empty name becomes `colNNN`, duplicates get `_NNN`.
- Blank strings become NULL (SAS has no missing value for characters; NULL is what a database query
  expects).
- Rows come with 1-based record numbers, continuous across chunks. A truncated or damaged file fails
  with `SasReadError` naming it; the caller must not mark such a load complete (the loader's
  transaction is rolled back).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyreadstat

from include.common.errors import ClaimsflowError

DATE_FORMATS = ("DATE", "YYMMDD", "MMDDYY", "DDMMYY", "E8601DA", "JULIAN", "MONYY", "WEEKDATE", "WORDDATE",
                "YYMON", "NLDATE", "B8601DA")
DATETIME_FORMATS = ("DATETIME", "E8601DT", "B8601DT", "NLDATM")
TIME_FORMATS = ("TIME", "HHMM", "TOD", "E8601TM", "HOUR")
SQL_TYPES = {"text": "text", "numeric": "double precision", "date": "date", "datetime": "timestamp",
             "time": "time"}


class SasReadError(ClaimsflowError):
    pass


@dataclass(frozen=True)
class SasColumn:
    name: str  # normalised SQL name
    original_name: str
    label: str
    sas_type: str  # string | double
    sas_format: str
    width: int
    kind: str  # text | numeric | date | datetime | time

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.kind]


@dataclass(frozen=True)
class SasLayout:
    path: str
    columns: tuple[SasColumn, ...]
    row_count: int | None
    encoding: str | None
    file_label: str | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def sql_name(name: str, seen: dict[str, int], position: int = 0) -> str:
    base = re.sub(r"[.\s]", "_", (name or "").strip().lower())
    if not base:
        base = f"col{position:03d}"
    if base[0].isdigit():
        base = "c_" + base
    base = re.sub(r"[^a-z0-9_]", "_", base)
    if base in seen:
        seen[base] += 1
        candidate = f"{base}_{seen[base]:03d}"
    else:
        seen[base] = 0
        candidate = base
    return candidate


def _kind(sas_type: str, sas_format: str) -> str:
    if sas_type == "string":
        return "text"
    fmt = (sas_format or "").upper().lstrip("$")
    if fmt.startswith(DATETIME_FORMATS):
        return "datetime"
    if fmt.startswith(DATE_FORMATS):
        return "date"
    if fmt.startswith(TIME_FORMATS):
        return "time"
    return "numeric"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SasReadError("no such file", source=str(path))
    if path.stat().st_size == 0:
        raise SasReadError("empty file", source=str(path))


def read_sas_layout(path: str | Path, *, encoding: str | None = None) -> SasLayout:
    path = Path(path)
    _check_file(path)
    try:
        _, meta = pyreadstat.read_sas7bdat(str(path), metadataonly=True, encoding=encoding)
    except Exception as exc:  # pyreadstat raises its own ReadstatError / PyreadstatError
        raise SasReadError(f"not a readable SAS7BDAT file ({type(exc).__name__}: {exc})", source=str(path)) from exc
    seen: dict[str, int] = {}
    columns = []
    labels = meta.column_names_to_labels or {}
    for i, original in enumerate(meta.column_names):
        sas_type = meta.readstat_variable_types.get(original, "double")
        sas_format = (meta.original_variable_types or {}).get(original) or ""
        columns.append(SasColumn(
            name=sql_name(original, seen, i), original_name=original, label=labels.get(original) or "",
            sas_type="string" if sas_type == "string" else "double", sas_format=sas_format,
            width=int((meta.variable_storage_width or {}).get(original) or 8), kind=_kind(sas_type, sas_format)))
    return SasLayout(str(path), tuple(columns), meta.number_rows, meta.file_encoding, meta.file_label)


_ARROW = {"text": pa.string(), "numeric": pa.float64(), "date": pa.date32(), "datetime": pa.timestamp("us"),
          "time": pa.time64("us")}


def iter_sas_batches(path: str | Path, layout: SasLayout, *, chunk_rows: int = 100_000,
                     encoding: str | None = None) -> Iterator[tuple[pa.Array, pa.Table]]:
    """(record numbers, typed table named by the layout) per chunk."""
    path = Path(path)
    _check_file(path)
    start = 1
    schema = pa.schema([(c.name, _ARROW[c.kind]) for c in layout.columns])
    try:
        chunks = pyreadstat.read_file_in_chunks(pyreadstat.read_sas7bdat, str(path), chunksize=chunk_rows,
                                                encoding=encoding)
        for df, _meta in chunks:
            arrays = []
            for c in layout.columns:
                series = df[c.original_name]
                if c.kind == "text":
                    array = pa.array(series.where(series.astype(str).str.strip() != "", None), pa.string(),
                                     from_pandas=True)
                else:
                    array = pa.array(series, _ARROW[c.kind], from_pandas=True)
                arrays.append(array)
            n = len(df)
            yield pa.array(range(start, start + n), pa.int64()), pa.Table.from_arrays(arrays, schema=schema)
            start += n
    except SasReadError:
        raise
    except Exception as exc:
        raise SasReadError(f"reading stopped after {start - 1:,} rows ({type(exc).__name__}: {exc}); the file is "
                           "damaged or truncated, or its encoding is not the declared one", source=str(path)) from exc
