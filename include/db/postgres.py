"""PostgreSQL building blocks: safe identifiers, streaming COPY, atomic table replacement, SQL files.

Plain psycopg 3; the Airflow adapter (`claimsflow_airflow.hooks.postgres`) only supplies the
connection. Every name that reaches SQL goes through `psycopg.sql.Identifier`; names that come from
file names are first validated (or derived) with `identifier_from_filename`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from include.common.errors import DatabaseError, InvalidIdentifier
from include.common.progress import Progress

log = logging.getLogger("claimsflow.db")
SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated, so refuse them
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

TableName = str | tuple[str, str]


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain lower-case SQL identifier (letters, digits, _), else raise."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidIdentifier(
            f"{what} {name!r} is not a plain identifier (lower-case letters, digits and _, not starting with a digit)"
        )
    if len(name.encode()) > MAX_IDENTIFIER:
        raise InvalidIdentifier(f"{what} {name!r} is longer than {MAX_IDENTIFIER} bytes")
    return name


def identifier_from_filename(filename: str, prefix: str = "t") -> str:
    """A safe table name derived from a file name: `MBSF_AB_2015.dat` -> `mbsf_ab_2015`.

    Anything that is not a letter or digit becomes `_`; a name that would start with a digit gets
    `prefix_`; a name too long keeps its head and a short hash of the whole, so two long names that
    share a prefix still differ.
    """
    stem = Path(filename).name
    stem = stem.split(".", 1)[0] if not stem.startswith(".") else stem.lstrip(".")
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    if not name:
        raise InvalidIdentifier(f"cannot derive a table name from file name {filename!r}")
    if name[0].isdigit():
        name = f"{prefix}_{name}"
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_IDENTIFIER - 9]}_{digest}"
    return validate_identifier(name, "table name")


def table_identifier(table: TableName) -> sql.Identifier:
    """`"schema"."table"` (or `"table"`) after validating each part."""
    parts = (table,) if isinstance(table, str) else tuple(table)
    for part in parts:
        validate_identifier(part, "schema/table name")
    return sql.Identifier(*parts)


def column_list(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(validate_identifier(c, "column name")) for c in columns)


def _table_label(table: TableName) -> str:
    return table if isinstance(table, str) else ".".join(table)


def copy_rows(
    conn: psycopg.Connection,
    table: TableName,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    progress: Progress | None = None,
    progress_every: int = 10_000,
) -> int:
    """Stream Python rows into `table` with COPY (binary-safe text protocol); returns the row count.

    Rows are consumed lazily, so a generator over a 10 GB file streams in constant memory. The caller
    owns the transaction: nothing is committed here.
    """
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(table_identifier(table), column_list(columns))
    count = 0
    try:
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
                if progress is not None and count % progress_every == 0:
                    progress.advance(progress_every)
    except psycopg.Error as exc:
        raise DatabaseError(f"COPY failed after {count} rows: {exc}", source=_table_label(table)) from exc
    if progress is not None:
        progress.advance(count % progress_every)
    return count


def copy_text(
    conn: psycopg.Connection,
    table: TableName,
    columns: Sequence[str],
    chunks: Iterable[bytes],
    *,
    fmt: str = "csv",
    header: bool = False,
    delimiter: str = ",",
    null: str = "",
) -> int:
    """Stream already-formatted CSV/text bytes into `table` with COPY; returns the rows PostgreSQL counted."""
    if fmt not in ("csv", "text"):
        raise ValueError(f"fmt must be csv or text, got {fmt!r}")
    options = [sql.SQL("FORMAT {}").format(sql.SQL(fmt))]
    if fmt == "csv":
        options.append(sql.SQL("HEADER {}").format(sql.SQL("true" if header else "false")))
    options.append(sql.SQL("DELIMITER {}").format(sql.Literal(delimiter)))
    options.append(sql.SQL("NULL {}").format(sql.Literal(null)))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH ({})").format(
        table_identifier(table), column_list(columns), sql.SQL(", ").join(options)
    )
    try:
        with conn.cursor() as cur:
            with cur.copy(stmt) as copy:
                for chunk in chunks:
                    copy.write(chunk)
            return cur.rowcount
    except psycopg.Error as exc:
        raise DatabaseError(f"COPY failed: {exc}", source=_table_label(table)) from exc


@contextmanager
def replacing_table(conn: psycopg.Connection, schema: str, table: str, *, lock_timeout_s: float = 300) -> Iterator[str]:
    """Build a table under a staging name and swap it in atomically.

        with replacing_table(conn, "maps", "npi") as staging:
            conn.execute(f"CREATE TABLE maps.{staging} (...)")   # staging is a validated identifier
            copy_rows(conn, ("maps", staging), cols, rows)

    Everything runs in one transaction: on success the old table is dropped and the staging one renamed
    and committed together, so readers see either the old or the new table, never a half-loaded one;
    on error the transaction is rolled back and the old table is untouched.
    """
    validate_identifier(schema, "schema name")
    validate_identifier(table, "table name")
    staging = validate_identifier(f"{table[: MAX_IDENTIFIER - 10]}__staging", "staging table name")
    try:
        # A reader holding the old table in a long transaction would make the swap wait forever:
        # give up after a while with a clear error instead.
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, staging)))
        yield staging
        _drop_with_dependent_views(conn, schema, table)
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, staging), sql.Identifier(table))
        )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _drop_with_dependent_views(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Drop the old table; views built on it (e.g. medicare.ps over the raw Medicare tables) go with it,
    named in the log: the DAG that owns them rebuilds them when it next runs (it follows the Asset)."""
    dependents = conn.execute(
        """SELECT DISTINCT v.oid::regclass::text
             FROM pg_depend d
             JOIN pg_rewrite r ON r.oid = d.objid
             JOIN pg_class v ON v.oid = r.ev_class
            WHERE d.refobjid = to_regclass(%s) AND v.oid <> d.refobjid""",
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchall()
    if dependents:
        log.warning("replacing %s.%s drops the views built on it, rebuilt by their own DAG: %s", schema, table,
                    ", ".join(r[0] for r in dependents))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE" if dependents else "DROP TABLE IF EXISTS {}")
                 .format(sql.Identifier(schema, table)))


def read_sql(relative_path: str) -> str:
    """The text of `include/sql/<relative_path>`; refuses paths that leave that folder."""
    path = (SQL_DIR / relative_path).resolve()
    if SQL_DIR not in path.parents or path.suffix != ".sql":
        raise ValueError(f"{relative_path!r} is not a .sql file under {SQL_DIR}")
    return path.read_text()


def sql_file(relative_path: str, **identifiers: str) -> sql.Composed:
    """An SQL file as a composable statement; `{name}` placeholders become quoted identifiers."""
    template = sql.SQL(read_sql(relative_path))
    return template.format(**{k: sql.Identifier(validate_identifier(v)) for k, v in identifiers.items()})


def sql_template(relative_path: str, literals: dict[str, Any] | None = None, *,
                 fragments: dict[str, sql.Composable] | None = None, **identifiers: str) -> sql.Composed:
    """An SQL file whose `{name}` placeholders (only the names given) become quoted identifiers, or,
    for the names in `literals`, quoted literals (a file of several statements cannot take parameters),
    or, for the names in `fragments`, SQL composed by the caller from identifiers and literals.

    Unlike `sql_file`, every other brace is left alone, so the file may hold regular expressions
    (`[0-9]{5}`) and array literals (`'{}'`) as they are.
    """
    text = read_sql(relative_path)
    names: dict[str, sql.Composable] = {k: sql.Literal(v) for k, v in (literals or {}).items()}
    names.update({k: sql.Identifier(validate_identifier(v)) for k, v in identifiers.items()})
    names.update(fragments or {})
    if not names:
        return sql.Composed([sql.SQL(text)])
    pattern = re.compile(r"\{(" + "|".join(map(re.escape, names)) + r")\}")
    parts: list[sql.Composable] = []
    pos = 0
    for m in pattern.finditer(text):
        parts += [sql.SQL(text[pos:m.start()]), names[m.group(1)]]
        pos = m.end()
    parts.append(sql.SQL(text[pos:]))
    return sql.Composed(parts)


def run_sql_file(conn: psycopg.Connection, relative_path: str, params: dict[str, Any] | None = None, **identifiers: str) -> None:
    """Execute an SQL file (may hold several statements when it takes no parameters)."""
    stmt = sql_file(relative_path, **identifiers) if identifiers else read_sql(relative_path)
    try:
        conn.execute(stmt, params)
    except psycopg.Error as exc:
        raise DatabaseError(str(exc).strip(), source=f"include/sql/{relative_path}") from exc
