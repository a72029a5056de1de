"""The map builders' caches in PostgreSQL (`maps.npi_cache`, `maps.hcpcs_cache`) and the wanted sets
(`maps.npi_wanted`, `maps.hcpcs_wanted`: the identifiers of the current spending input).

Every resolver writes `CacheRow`s through `upsert`, in batches, committing each batch: a run that is
killed keeps everything it resolved, and the next run asks `pending` for what is left. Rows are moved
in with COPY into a temporary table and one INSERT … ON CONFLICT (include/sql/maps/upsert_cache.sql);
an `error` never replaces a `found`/`not_found`.

    ensure_schema(conn)
    replace_wanted(conn, "npi", [("1234567893", True), ...])
    upsert(conn, "npi", [CacheRow("1234567893", "found", "bulk", response_json={...})])
    pending(conn, "npi")   -> ["1457...", ...]
    coverage(conn, "npi")  -> {"found": 380, "not_found": 12, "invalid": 8}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from include.common.errors import DatabaseError
from include.db.postgres import copy_rows, copy_text, run_sql_file, sql_file

STATUSES = ("found", "not_found", "error", "invalid")


@dataclass(frozen=True)
class Kind:
    name: str
    cache: str
    wanted: str
    key: str
    sources: tuple[str, ...]


KINDS = {
    "npi": Kind("npi", "npi_cache", "npi_wanted", "npi", ("bulk", "api", "input")),
    "hcpcs": Kind("hcpcs", "hcpcs_cache", "hcpcs_wanted", "hcpcs_code", ("fallback", "api", "input")),
}
CACHE_COLUMNS = ("status", "source", "url", "request_params", "api_run_id", "requested_at_utc", "error_message",
                 "response_json")


@dataclass(frozen=True)
class CacheRow:
    identifier: str
    status: str  # found | not_found | error | invalid
    source: str  # npi: bulk | api | input; hcpcs: fallback | api | input
    url: str | None = None
    request_params: dict[str, Any] | None = None
    api_run_id: str | None = None
    requested_at_utc: datetime | None = None
    error_message: str | None = None
    response_json: Any = None  # the API's payload, or for bulk/fallback rows a synthetic one in the same shape


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown map kind {name!r}; known: {', '.join(KINDS)}") from None


def utc_now() -> datetime:
    return datetime.now(UTC)


def ensure_schema(conn: psycopg.Connection) -> None:
    run_sql_file(conn, "maps/create_cache.sql")
    conn.commit()


def _check(kind: Kind, row: CacheRow) -> None:
    if row.status not in STATUSES:
        raise ValueError(f"{kind.name} {row.identifier}: status {row.status!r} is not one of {STATUSES}")
    if row.source not in kind.sources:
        raise ValueError(f"{kind.name} {row.identifier}: source {row.source!r} is not one of {kind.sources}")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_STAGING = ("CREATE TEMPORARY TABLE IF NOT EXISTS cache_staging (ord bigint, key text, status text, source text, "
            "url text, request_params text, api_run_id text, requested_at_utc timestamptz, "
            "error_message text, response_json text) ON COMMIT DELETE ROWS")


def upsert(conn: psycopg.Connection, kind_name: str, rows: Iterable[CacheRow], *, commit: bool = True) -> int:
    """Write rows into the cache (later rows for the same identifier win); returns the rows given.
    A bad row refuses the whole batch (rolled back)."""
    kind = kind_of(kind_name)
    conn.execute(_STAGING)

    def records() -> Iterator[Sequence[Any]]:
        for i, r in enumerate(rows):
            _check(kind, r)
            yield (i, r.identifier, r.status, r.source, r.url, _json(r.request_params), r.api_run_id,
                   r.requested_at_utc, r.error_message, _json(r.response_json))

    try:
        n = copy_rows(conn, "cache_staging", ("ord", "key", *CACHE_COLUMNS), records())
        conn.execute(sql_file("maps/upsert_cache.sql", cache=kind.cache, key=kind.key, staging="cache_staging"))
    except BaseException:
        conn.rollback()  # nothing of a refused batch is written
        raise
    if commit:
        conn.commit()
    return n


_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _copy_field(value: str | None) -> str:
    """One value in COPY's text format (None -> \\N)."""
    if value is None:
        return "\\N"
    for char, escaped in _COPY_ESCAPES:
        value = value.replace(char, escaped)
    return value


def _copy_fields(values: pa.Array) -> pa.Array:
    """`_copy_field` column-wise (nulls stay null)."""
    if not _may_need_copy_escapes(values):
        return values
    for char, escaped in _COPY_ESCAPES:
        values = pc.replace_substring(values, char, escaped)
    return values


def _may_need_copy_escapes(values: pa.Array) -> bool:
    """Could a value have a backslash, tab, newline or carriage return? A scan of the data bytes (for
    10k JSON texts, 12 MB, a few ms; a regex takes 5 times as long): any backslash or byte below 14."""
    values = values.cast(pa.string())
    if not len(values):
        return False
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    start, stop = offsets[values.offset], offsets[values.offset + len(values)]
    if stop <= start:
        return False
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[start:stop]
    return bool((data == 0x5C).any() or (data < 14).any())


def upsert_json(conn: psycopg.Connection, kind_name: str, keys: pa.Array, response_json: pa.Array, *,
                status: str, source: str, request_params: dict[str, Any] | None = None,
                api_run_id: str | None = None, commit: bool = True) -> int:
    """`upsert` for many rows built column-wise: the identifiers and their response JSON already as text
    (Arrow string arrays, one row each), one status, source, request_params and api_run_id for all,
    url/requested_at_utc/error_message empty. The COPY data is made by Arrow (no Python object per
    row). The outcome is `upsert`'s; the way is shorter when `status` is not `error` (which would have
    to spare found/not_found rows): the batch's old rows are deleted and the new ones COPYed straight
    into the cache, no staging table, no sort; should a row for one of the keys appear meanwhile
    (another writer) or a key come twice, the batch goes the staging way instead. Returns the rows given."""
    kind = kind_of(kind_name)
    if status not in STATUSES:
        raise ValueError(f"{kind.name}: status {status!r} is not one of {STATUSES}")
    if source not in kind.sources:
        raise ValueError(f"{kind.name}: source {source!r} is not one of {kind.sources}")
    n = len(keys)
    if len(response_json) != n:
        raise ValueError(f"{kind.name}: {n} identifiers but {len(response_json)} responses")
    if keys.null_count:
        raise ValueError(f"{kind.name}: an identifier is null")
    if n == 0:
        return 0
    fixed = "\t".join(_copy_field(v) for v in (status, source, None, _json(request_params), api_run_id, None, None))
    keys_text, json_text = _copy_fields(keys), pc.fill_null(_copy_fields(response_json), "\\N")
    columns = sql.SQL(", ").join(map(sql.Identifier, CACHE_COLUMNS))
    try:
        if status != "error":
            conn.execute("SAVEPOINT cache_upsert_json")
            try:
                conn.execute(sql.SQL("DELETE FROM maps.{} WHERE {} = ANY(%s::text[])").format(
                    sql.Identifier(kind.cache), sql.Identifier(kind.key)), [_array_literal(keys)])
                try:
                    with conn.cursor() as cur, cur.copy(sql.SQL("COPY maps.{} ({}, {}) FROM STDIN").format(
                            sql.Identifier(kind.cache), sql.Identifier(kind.key), columns)) as copy:
                        copy.write(_copy_data(keys_text, f"\t{fixed}\t", json_text))
                except psycopg.errors.UniqueViolation:
                    raise
                except psycopg.Error as exc:
                    raise DatabaseError(f"COPY failed: {exc}", source=f"maps.{kind.cache}") from exc
                conn.execute("RELEASE SAVEPOINT cache_upsert_json")
            except psycopg.errors.UniqueViolation:
                conn.execute("ROLLBACK TO SAVEPOINT cache_upsert_json")
            else:
                if commit:
                    conn.commit()
                return n
        conn.execute(_STAGING)
        ords = pa.array(np.arange(n)).cast(pa.string())
        copy_text(conn, "cache_staging", ("ord", "key", *CACHE_COLUMNS),
                  [_copy_data(ords, "\t", keys_text, f"\t{fixed}\t", json_text)], fmt="text", delimiter="\t",
                  null="\\N")
        conn.execute(sql_file("maps/upsert_cache.sql", cache=kind.cache, key=kind.key, staging="cache_staging"))
    except BaseException:
        if not conn.closed:
            conn.rollback()  # nothing of a refused batch is written
        raise
    if commit:
        conn.commit()
    return n


def _array_literal(values: pa.Array) -> str:
    """A PostgreSQL text[] literal of the values (made by Arrow: a list parameter would cost a Python
    object per value, and its dumping holds the GIL the building thread needs)."""
    values = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(values)], type=pa.int32()), values), '","')
    return '{"' + joined[0].as_py() + '"}'


def _copy_data(*parts: pa.Array | str) -> memoryview:
    """COPY text lines: the parts of each row concatenated, "\\n" after each; one contiguous buffer."""
    lines = pc.binary_join_element_wise(*parts, "\n", "")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    return memoryview(lines.buffers()[2])[offsets[lines.offset]:offsets[lines.offset + len(lines)]]


def replace_wanted(conn: psycopg.Connection, kind_name: str, rows: Iterable[Sequence[Any]]) -> int:
    """Replace the wanted set: npi rows are (npi, luhn_valid); hcpcs rows are (code,)."""
    kind = kind_of(kind_name)
    conn.execute(sql.SQL("TRUNCATE maps.{}").format(sql.Identifier(kind.wanted)))
    columns = ("npi", "luhn_valid") if kind.name == "npi" else ("hcpcs_code",)
    n = copy_rows(conn, ("maps", kind.wanted), columns, rows)
    conn.commit()
    return n


def pending(conn: psycopg.Connection, kind_name: str, shard: int = 0, shards: int = 1) -> list[str]:
    """Wanted identifiers without a definite answer yet (never tried, or errors only); with `shards` > 1
    only those of `shard` (0-based), a stable split for concurrent tasks."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    kind = kind_of(kind_name)
    stmt = sql_file("maps/pending.sql", wanted=kind.wanted, cache=kind.cache, key=kind.key)
    return [r[0] for r in conn.execute(stmt, {"shard": shard, "shards": shards})]


def coverage(conn: psycopg.Connection, kind_name: str) -> dict[str, int]:
    kind = kind_of(kind_name)
    stmt = sql_file("maps/coverage.sql", wanted=kind.wanted, cache=kind.cache, key=kind.key)
    return {status: n for status, n in conn.execute(stmt)}


def reset(conn: psycopg.Connection) -> None:
    """`reset_map`: forget every cached answer."""
    conn.execute("TRUNCATE maps.npi_cache, maps.hcpcs_cache")
    conn.commit()


def in_batches(items: Sequence[str], size: int) -> list[list[str]]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
