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

import psycopg
from psycopg import sql

from include.db.postgres import copy_rows, run_sql_file, sql_file

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


def upsert(conn: psycopg.Connection, kind_name: str, rows: Iterable[CacheRow], *, commit: bool = True) -> int:
    """Write rows into the cache (later rows for the same identifier win); returns the rows given.
    A bad row refuses the whole batch (rolled back)."""
    kind = kind_of(kind_name)
    conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS cache_staging (ord bigint, key text, status text, source text, "
                 "url text, request_params text, api_run_id text, requested_at_utc timestamptz, "
                 "error_message text, response_json text) ON COMMIT DELETE ROWS")

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
