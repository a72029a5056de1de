"""DocGraph Hop Teaming: one year's zip into PostgreSQL, streamed from the zip member (never extracted to
disk), with the file's line number on every row.

    zip_path = find_year_zip(folder, 2020)            # DocGraph_Hop_Teaming_2020*.zip (or the year in the member)
    result = load_year(conn, zip_path, 2020, schema="hop_build", table="raw_2020")

The member is the `*Hop_Teaming_<year>*.csv` outside `__MACOSX/`. Its first line must be the Hop
Teaming header; the older CMS "Physician Shared Patient Patterns" files are headerless with the shared
patient count in another column, and are refused rather than mis-read.

Fast path: the bytes after the header go to `COPY … (FORMAT csv)` unchanged, into typed columns; the
line number comes from an identity column (one COPY in one session numbers the rows in stream order,
starting at 2 after the header), so no Python touches a row. If PostgreSQL refuses a row (a
non-numeric value, a truncated last line), the year is loaded again on the careful path: every line as
one text value, split and checked in SQL; good rows get their types, the others go to `<table>_rejects`
with the line, its text and the reason. Nothing is dropped silently.
"""

from __future__ import annotations

import fnmatch
import logging
import queue
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from include.common.errors import ClaimsflowError
from include.db.postgres import sql_template, validate_identifier

log = logging.getLogger("claimsflow.hop_teaming")

HEADER = ("from_npi", "to_npi", "patient_count", "transaction_count", "average_day_wait", "std_day_wait")
CHUNK = 1 << 20
_YEAR = re.compile(r"Hop_Teaming_(\d{4})", re.IGNORECASE)


class HopTeamingError(ClaimsflowError):
    """A Hop Teaming input that cannot be loaded; the message names the file (and line)."""


def _members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
            and not Path(m.filename).name.startswith("._")]


def find_member(zf: zipfile.ZipFile, year: int | None, source: str) -> zipfile.ZipInfo:
    """The `*Hop_Teaming_<year>*.csv` member (the only CSV when the name says no year)."""
    pattern = f"*hop_teaming_{year}*.csv" if year else "*hop_teaming_*.csv"
    hits = [m for m in _members(zf) if fnmatch.fnmatch(Path(m.filename).name.lower(), pattern)]
    if len(hits) != 1:
        names = ", ".join(m.filename for m in _members(zf)) or "nothing"
        what = "no member" if not hits else f"{len(hits)} members"
        raise HopTeamingError(f"{what} matching {pattern!r} (the zip holds: {names})", source=source)
    return hits[0]


def year_of(name: str) -> int | None:
    m = _YEAR.search(name)
    return int(m.group(1)) if m else None


def find_year_zip(folder: Path, year: int) -> Path:
    """The year's zip in `folder`: by its name, else by the year in its member's name."""
    zips = sorted(p for p in Path(folder).glob("*.zip") if not p.name.startswith("._"))
    named = [p for p in zips if str(year) in p.name]
    for p in named or zips:
        try:
            with zipfile.ZipFile(p) as zf:
                find_member(zf, year, str(p))
            return p
        except (HopTeamingError, zipfile.BadZipFile):
            continue
    raise HopTeamingError(f"no Hop Teaming zip for {year} (looked at {len(zips)} zip files)", source=str(folder))


def check_header(first_line: bytes, source: str) -> None:
    text = first_line.decode("utf-8-sig", errors="replace").strip()
    cells = [c.strip().strip('"').lower() for c in text.split(",")]
    if tuple(cells) == HEADER:
        return
    if cells and all(re.fullmatch(r"[0-9.]*", c) for c in cells):
        raise HopTeamingError(
            f"line 1 is data, not the Hop Teaming header ({text[:80]!r}): a headerless file such as the CMS "
            f"'Physician Shared Patient Patterns' (npi1,npi2,pair_count,bene_count,same_day_count) puts the "
            f"patient count in another column; refusing to guess", source=source, line=1)
    raise HopTeamingError(f"unexpected header {text[:120]!r}; expected {','.join(HEADER)}", source=source, line=1)


@dataclass
class LoadResult:
    year: int
    zip_path: str
    member: str
    rows: int = 0  # typed rows loaded
    rejected: int = 0  # lines refused at parse (non-numeric, wrong field count)
    careful_path: bool = False
    seconds: float = 0.0
    compressed_bytes: int = 0
    csv_bytes: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


def _chunks(f: IO[bytes], depth: int = 8) -> Iterator[bytes]:
    """The member's bytes in CHUNK blocks, inflated on a second thread (zlib releases the GIL) while
    this one sends the previous blocks to COPY: the two cores work together."""
    blocks: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def inflate() -> None:
        try:
            while not stop.is_set():
                chunk = f.read(CHUNK)
                blocks.put(chunk)
                if not chunk:
                    return
        except BaseException as exc:
            blocks.put(exc)

    worker = threading.Thread(target=inflate, name="hop-inflate", daemon=True)
    worker.start()
    try:
        while True:
            item = blocks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                blocks.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _execute(conn: psycopg.Connection, stmt: sql.Composable) -> None:
    conn.execute(stmt)


def load_year(conn: psycopg.Connection, zip_path: Path, year: int, *, schema: str, table: str) -> LoadResult:
    """Load the year's member into `<schema>.<table>` (dropped and recreated), committed on success.
    Refused lines go to `<schema>.<table>_rejects`."""
    validate_identifier(schema, "schema name")
    validate_identifier(table, "table name")
    started = time.monotonic()
    source = str(zip_path)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise HopTeamingError(f"not a readable zip: {exc}", source=source) from exc
    with zf:
        member = find_member(zf, year, source)
        label = f"{zip_path.name}:{member.filename}"
        result = LoadResult(year, source, member.filename, compressed_bytes=member.compress_size,
                            csv_bytes=member.file_size)
        names = {"schema": schema, "raw": table, "rejects": f"{table}_rejects", "lines": f"{table}_lines"}
        try:
            with zf.open(member) as f:
                check_header(f.readline(), label)
                _execute(conn, sql_template("hop_teaming/raw_table.sql", **names))
                result.rows = _copy(conn, sql.SQL(
                    "COPY {}.{} (from_npi, to_npi, patient_count, transaction_count, average_day_wait, std_day_wait) "
                    "FROM STDIN (FORMAT csv)").format(sql.Identifier(schema), sql.Identifier(table)), _chunks(f))
            conn.commit()
        except psycopg.DataError as exc:  # a bad value or a truncated line (SQLSTATE class 22): the careful path
            conn.rollback()
            log.warning("%s: %s; loading again line by line", label, str(exc).strip().splitlines()[0])
            result.careful_path = True
            with zf.open(member) as f:
                f.readline()
                _execute(conn, sql_template("hop_teaming/raw_table.sql", **names))
                _copy(conn, sql.SQL("COPY {}.{} (line) FROM STDIN (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')")
                      .format(sql.Identifier(schema), sql.Identifier(names["lines"])), _chunks(f))
            _execute(conn, sql_template("hop_teaming/raw_careful.sql", **names))
            result.rows = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]
            for reason, n in conn.execute(sql.SQL("SELECT reason, count(*) FROM {}.{} GROUP BY 1").format(
                    sql.Identifier(schema), sql.Identifier(names["rejects"]))).fetchall():
                result.rejects_by_reason[reason] = n
            result.rejected = sum(result.rejects_by_reason.values())
            conn.commit()
        except zipfile.BadZipFile as exc:
            conn.rollback()
            raise HopTeamingError(f"corrupt zip member {member.filename}: {exc}", source=source) from exc
        except (zlib_error(), EOFError) as exc:
            conn.rollback()
            raise HopTeamingError(f"corrupt or truncated zip member {member.filename}: {exc}", source=source) from exc
    result.seconds = time.monotonic() - started
    log.info("%s: %s rows, %d refused %s in %.1fs (%s)", label, f"{result.rows:,}", result.rejected,
             result.rejects_by_reason or "", result.seconds, "careful path" if result.careful_path else "fast path")
    return result


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def _copy(conn: psycopg.Connection, stmt: sql.Composable, chunks: Iterator[bytes]) -> int:
    with conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            for chunk in chunks:
                copy.write(chunk)
        return cur.rowcount
