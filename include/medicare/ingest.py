"""Loading ResDAC files into `medicare_raw`, one table per file, every row traceable to its source.

Fixed-width (2011+): `store_layout` keeps the parsed FTS in `claimsflow_meta.medicare_layouts`;
`load_fwf` streams the `.dat` part(s) through the vectorised reader into a staging table with COPY
(text format, made by `FwfReader.copy_blocks` on a second thread: values checked but not converted,
PostgreSQL's input functions do that once; `source_file` is a column default per part, not sent):

- columns: `source_file` (the .dat part's name), `record_number` (its line in that file), the FTS
  columns (lower-case short names, SQL types from the FTS), and the uniform `bene_id`, `state`, `zip`,
  `year` GENERATED from the first candidate column (include/medicare/uniform.py), or NULL;
- refused records (wrong length, a value that does not fit its type, a CHAR value that is not ASCII
  or holds a NUL byte) go to `medicare_raw.ingest_rejects` with their raw bytes, in the same
  transaction;
- the primary key (source_file, record_number) and the bene_id index are built after the load, then
  the staging table replaces the old one atomically;
- the load is recorded in `claimsflow_meta.load_manifest` with a fingerprint of the FTS and data files
  (size + sha256): the same files again are skipped; changed files replace the table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.types.json import Jsonb

from include.common.errors import DatabaseError
from include.common.files import sha256_of
from include.db.postgres import (
    copy_rows,
    copy_text,
    identifier_from_filename,
    read_sql,
    replacing_table,
    run_sql_file,
    validate_identifier,
)
from include.fts_parsers.fixed_width import FwfReader, batch_to_csv
from include.fts_parsers.fts import FtsFile, FtsLayout
from include.fts_parsers.sas7bdat import SasReadError, iter_sas_batches, read_sas_layout
from include.medicare.uniform import match_uniform
from include.meta import manifest as load_manifest
from include.meta.manifest import RunInfo

log = logging.getLogger("claimsflow.medicare")

SCHEMA = "medicare_raw"
DATASET = "medicare_raw"


@dataclass
class LoadResult:
    table: str
    status: str  # loaded | skipped
    rows: int = 0
    rejected: int = 0
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    uniform: dict[str, str | None] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def ensure_schema(conn: psycopg.Connection) -> None:
    load_manifest.ensure_meta_schema(conn)
    run_sql_file(conn, "medicare_raw/create_schema.sql")
    conn.commit()


def fingerprint(paths: list[Path]) -> tuple[int, str]:
    """(total bytes, sha256 over each file's name, size and sha256): what "the same files" means."""
    h = hashlib.sha256()
    total = 0
    for p in paths:
        size = p.stat().st_size
        total += size
        h.update(f"{p.name}\0{size}\0{sha256_of(p)}\n".encode())
    return total, h.hexdigest()


def store_layout(conn: psycopg.Connection, fts_file: FtsFile, layout: FtsLayout) -> None:
    conn.execute(read_sql("medicare_raw/upsert_layout.sql"), {
        "table_name": fts_file.table, "year": fts_file.year, "fts_path": str(fts_file.fts),
        "fts_sha256": sha256_of(fts_file.fts), "record_length": layout.record_length,
        "columns": len(layout.columns), "layout": Jsonb(layout.to_dict())})
    conn.commit()


def stored_layout(conn: psycopg.Connection, table: str) -> FtsLayout | None:
    row = conn.execute("SELECT layout FROM claimsflow_meta.medicare_layouts WHERE table_name = %s", (table,)).fetchone()
    return FtsLayout.from_dict(row[0]) if row else None


def _uniform_expr(source: str, sql_type: str) -> sql.Composable:
    col = sql.Identifier(source)
    if sql_type.startswith(("varchar", "text")):
        return sql.SQL("nullif(btrim({}), '')").format(col)
    return sql.SQL("({})::text").format(col)


def _year_expr(source: str, sql_type: str) -> sql.Composable:
    col = sql.Identifier(source)
    if sql_type.startswith(("varchar", "text")):
        return sql.SQL("CASE WHEN {c} ~ '^\\s*[0-9]{{1,4}}\\s*$' THEN btrim({c})::integer END").format(c=col)
    return sql.SQL("({})::integer").format(col)


def table_ddl(schema: str, table: str, columns: list[tuple[str, str]], uniform: dict[str, str | None], *,
              file_year: int | None = None) -> sql.Composed:
    """CREATE TABLE with source_file, record_number, the data columns and the uniform columns. A file
    with no year column gets the year of its folder (NSAPH's rule), one without the others NULL."""
    names = {name for name, _ in columns}
    parts: list[sql.Composable] = [sql.SQL("source_file text NOT NULL"), sql.SQL("record_number bigint NOT NULL")]
    parts += [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type)) for name, sql_type in columns]
    types = dict(columns)
    for uniform_name, source in uniform.items():
        if uniform_name in names:
            continue  # the file has a column of that very name: it is the uniform column
        kind = sql.SQL("integer") if uniform_name == "year" else sql.SQL("text")
        if source is None and uniform_name == "year" and file_year is not None:
            parts.append(sql.SQL("year integer GENERATED ALWAYS AS ({}) STORED").format(sql.Literal(int(file_year))))
        elif source is None:
            parts.append(sql.SQL("{} {}").format(sql.Identifier(uniform_name), kind))
        else:
            expr = (_year_expr if uniform_name == "year" else _uniform_expr)(source, types[source])
            parts.append(sql.SQL("{} {} GENERATED ALWAYS AS ({}) STORED").format(sql.Identifier(uniform_name), kind, expr))
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, table), sql.SQL(", ").join(parts))


def _sql_columns(layout: FtsLayout) -> list[tuple[str, str]]:
    out = []
    for c in layout.columns:
        name = validate_identifier(c.name.lower(), "FTS column name")
        if name in ("source_file", "record_number"):
            raise ValueError(f"{layout.path}: column {c.name} collides with a claimsflow column")
        out.append((name, c.sql_type))
    return out


def _copy_blocks(paths: tuple[Path, ...], layout: FtsLayout, block_size: int | None):
    """(file index, COPY text of record_number + the FTS columns, rows, rejects) per block of the data
    files in turn, then (file index, None, 0, []) at the end of each file. A CHAR value that is not
    ASCII is a reject, not latin-1 guesswork (the files are declared ASCII)."""
    kwargs = {"block_size": block_size} if block_size else {}
    for i, data in enumerate(paths):
        reader = FwfReader(data, layout.columns, layout.record_length, non_ascii="reject", **kwargs)
        for block in reader.copy_blocks(record_numbers=True):
            yield i, block.data, block.rows, block.rejects
        yield i, None, 0, []


def _background(items, depth: int = 2):
    """Iterate `items` on a worker thread, `depth` items ahead; its exceptions re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done, stop, errors = object(), threading.Event(), []

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            errors.append(exc)
        finally:
            while not stop.is_set():
                try:
                    q.put(done, timeout=0.5)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=run, name="fwf-parse", daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not done:
            yield item
        if errors:
            raise errors[0]
    finally:
        stop.set()
        worker.join(timeout=5)


def _loaded_before(conn: psycopg.Connection, target: str, checksum: str, force: bool) -> dict[str, Any] | None:
    """The completed load of `target` from the same files (same fingerprint), unless `force`."""
    previous = load_manifest.latest_done(conn, target)
    conn.rollback()
    if previous and previous["source_checksum"] == checksum and not force:
        log.info("%s: the same files are already loaded (load %s); skipped", target, previous["load_id"])
        return previous
    return None


def _index_after_load(conn: psycopg.Connection, staging: str, table: str, load_id: int) -> None:
    """Indexes after the load, not before; named after the load, so they never collide with the indexes
    of the table being replaced; statistics for the columns the processing joins and groups on (all
    100-400 columns would take seconds)."""
    pk = validate_identifier(f"{table[:40]}_pk_{load_id}", "index name")
    bene = validate_identifier(f"{table[:40]}_bene_{load_id}", "index name")
    conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (source_file, record_number)").format(
        sql.Identifier(SCHEMA, staging), sql.Identifier(pk)))
    conn.execute(sql.SQL("CREATE INDEX {} ON {} (bene_id)").format(sql.Identifier(bene), sql.Identifier(SCHEMA, staging)))
    conn.execute(sql.SQL("ANALYZE {} (source_file, bene_id, state, zip, year)").format(sql.Identifier(SCHEMA, staging)))


def load_fwf(conn: psycopg.Connection, fts_file: FtsFile, layout: FtsLayout, *, run: RunInfo | None = None,
             block_size: int | None = None, force: bool = False) -> LoadResult:
    """Load the data files of one FTS into medicare_raw.<table> (replacing it atomically)."""
    started = time.monotonic()
    table = validate_identifier(fts_file.table, "table name")
    target = f"{SCHEMA}.{table}"
    paths = [fts_file.fts, *fts_file.data]
    total_bytes, checksum = fingerprint(paths)
    previous = _loaded_before(conn, target, checksum, force)
    if previous:
        return LoadResult(table, "skipped", rows=previous["row_count"] or 0, files=[p.name for p in fts_file.data])
    columns = _sql_columns(layout)
    uniform = match_uniform([name for name, _ in columns], source=str(fts_file.fts))
    load_id = load_manifest.start_load(conn, run or RunInfo(), dataset=DATASET, target=target,
                                       source_path=str(fts_file.fts), source_bytes=total_bytes,
                                       source_checksum=checksum, details={"files": [p.name for p in fts_file.data]})
    result = LoadResult(table, "loaded", files=[p.name for p in fts_file.data], uniform=uniform)
    copy_columns = ["record_number", *[name for name, _ in columns]]
    try:
        with replacing_table(conn, SCHEMA, table) as staging:
            conn.execute(table_ddl(SCHEMA, staging, columns, uniform, file_year=fts_file.year))
            conn.execute("DELETE FROM medicare_raw.ingest_rejects WHERE table_name = %s", (table,))
            # one parse thread for all the parts: the next part is read while the last blocks of
            # this one are still in COPY
            blocks = _background(_copy_blocks(fts_file.data, layout, block_size))
            try:
                for data in fts_file.data:
                    rejects: list = []
                    rows_before = result.rows

                    def chunks(rejects: list = rejects):
                        for _, text, n, batch_rejects in blocks:
                            if text is None:
                                return  # the end of this part
                            result.rows += n
                            rejects.extend(batch_rejects)
                            if n:
                                yield text

                    # the file name, the same on every row of the part, as a column default rather
                    # than sent and parsed on each row (a literal: any file name is safe here)
                    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN source_file SET DEFAULT {}").format(
                        sql.Identifier(SCHEMA, staging), sql.Literal(data.name)))
                    copied = copy_text(conn, (SCHEMA, staging), copy_columns, chunks(), fmt="text",
                                       delimiter="\t", null="")
                    if copied != result.rows - rows_before:
                        raise DatabaseError(f"COPY stored {copied:,} rows, the reader sent "
                                            f"{result.rows - rows_before:,}", source=str(data))
                    if rejects:
                        copy_rows(conn, (SCHEMA, "ingest_rejects"),
                                  ("table_name", "source_file", "record_number", "kind", "reason", "raw"),
                                  ((table, data.name, r.record, r.kind or "bad_value", r.reason, r.raw)
                                   for r in rejects))
                        for r in rejects:
                            result.rejected_by_kind[r.kind] = result.rejected_by_kind.get(r.kind, 0) + 1
                        result.rejected += len(rejects)
            finally:
                blocks.close()  # stops the parse thread on an error
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN source_file DROP DEFAULT").format(
                sql.Identifier(SCHEMA, staging)))
            _index_after_load(conn, staging, table, load_id)
        # replacing_table committed: the new table and its rejects are visible together
    except BaseException as exc:
        load_manifest.fail_load(conn, load_id, exc)
        raise
    result.seconds = time.monotonic() - started
    load_manifest.finish_load(conn, load_id, result.rows, {"rejected": result.rejected,
                                                          "rejected_by_kind": result.rejected_by_kind,
                                                          "uniform": uniform, "seconds": round(result.seconds, 2)})
    log.info("%s: %s rows from %s, %d rejected %s in %.1fs", target, f"{result.rows:,}",
             ", ".join(result.files), result.rejected, json.dumps(result.rejected_by_kind), result.seconds)
    return result


# ---------------------------------------------------------------------------------------- SAS7BDAT

SAS_TABLES = {"denominator": "mcr_bene", "inpatient": "mcr_ip"}  # NSAPH's names for the 1999-2010 files


def sas_table_name(path: Path, year: int) -> str:
    """`mcr_bene_<year>` / `mcr_ip_<year>` for the denominator / inpatient folders; other folders: a
    safe name derived from the file name (validated)."""
    prefix = SAS_TABLES.get(path.parent.name.lower())
    if prefix:
        return f"{prefix}_{year}"
    return validate_identifier(identifier_from_filename(path.name), "table name")


def find_sas_files(year_folder: Path) -> list[Path]:
    return sorted(p for p in Path(year_folder).rglob("*") if p.is_file() and p.suffix.lower() == ".sas7bdat")


def load_sas(conn: psycopg.Connection, path: Path, year: int, *, run: RunInfo | None = None, force: bool = False,
             chunk_rows: int = 100_000, encoding: str | None = None) -> LoadResult:
    """Load one SAS7BDAT file into medicare_raw.<mcr_bene|mcr_ip>_<year> (replacing it atomically)."""
    started = time.monotonic()
    path = Path(path)
    table = sas_table_name(path, year)
    target = f"{SCHEMA}.{table}"
    total_bytes, checksum = fingerprint([path])
    previous = _loaded_before(conn, target, checksum, force)
    if previous:
        return LoadResult(table, "skipped", rows=previous["row_count"] or 0, files=[path.name])
    layout = read_sas_layout(path, encoding=encoding)
    columns = [(c.name, c.sql_type) for c in layout.columns]
    for name, _ in columns:
        if name in ("source_file", "record_number"):
            raise ValueError(f"{path}: column {name} collides with a claimsflow column")
    uniform = match_uniform([name for name, _ in columns], source=str(path))
    load_id = load_manifest.start_load(conn, run or RunInfo(), dataset=DATASET, target=target, source_path=str(path),
                                       source_bytes=total_bytes, source_checksum=checksum,
                                       details={"encoding": layout.encoding, "file_label": layout.file_label})
    result = LoadResult(table, "loaded", files=[path.name], uniform=uniform)
    copy_columns = ["source_file", "record_number", *[name for name, _ in columns]]
    try:
        with replacing_table(conn, SCHEMA, table) as staging:
            conn.execute(table_ddl(SCHEMA, staging, columns, uniform, file_year=year))

            def chunks():
                for record_numbers, t in iter_sas_batches(path, layout, chunk_rows=chunk_rows, encoding=encoding):
                    n = t.num_rows
                    t = t.add_column(0, "record_number", record_numbers)
                    t = t.add_column(0, "source_file", pa.array([path.name] * n, pa.string()))
                    result.rows += n
                    yield batch_to_csv(t)

            copy_text(conn, (SCHEMA, staging), copy_columns, chunks())
            if layout.row_count is not None and result.rows != layout.row_count:
                raise SasReadError(f"read {result.rows:,} rows, the file header says {layout.row_count:,}",
                                   source=str(path))
            _index_after_load(conn, staging, table, load_id)
    except BaseException as exc:
        load_manifest.fail_load(conn, load_id, exc)
        raise
    result.seconds = time.monotonic() - started
    load_manifest.finish_load(conn, load_id, result.rows, {"uniform": uniform, "seconds": round(result.seconds, 2)})
    log.info("%s: %s rows from %s in %.1fs", target, f"{result.rows:,}", path.name, result.seconds)
    return result
