"""The load manifest (`claimsflow_meta.load_manifest`): one row per load of a table or file.

A load is recorded `running` in its own committed transaction before the work starts, so a failure
or a killed worker stays visible; `finish` or `fail` closes it. Later areas ask `latest_done` to skip
work that is already complete (same target, same source checksum).

    load_id = start_load(conn, RunInfo.from_context(ctx), dataset="nppes", target="nppes.npidata", ...)
    try:
        rows = ...load...
        finish_load(conn, load_id, rows)
    except Exception as exc:
        fail_load(conn, load_id, exc)
        raise
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from include.common.errors import DatabaseError
from include.db.postgres import read_sql, run_sql_file


@dataclass(frozen=True)
class RunInfo:
    """Which run did the work; empty outside Airflow (a CLI or a test)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None


def ensure_meta_schema(conn: psycopg.Connection) -> None:
    """Create `claimsflow_meta` and its tables if missing; commits."""
    run_sql_file(conn, "meta/create_schema.sql")
    conn.commit()


def start_load(
    conn: psycopg.Connection,
    run: RunInfo,
    *,
    dataset: str,
    target: str,
    source_path: str | None = None,
    source_bytes: int | None = None,
    source_checksum: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Record a load as running (committed at once) and return its id."""
    params = {
        "dataset": dataset,
        "target": target,
        "source_path": source_path,
        "source_bytes": source_bytes,
        "source_checksum": source_checksum,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "task_id": run.task_id,
        "details": Jsonb(details or {}),
    }
    load_id = conn.execute(read_sql("meta/start_load.sql"), params).fetchone()[0]
    conn.commit()
    return load_id


def _close(conn: psycopg.Connection, load_id: int, status: str, row_count: int | None, error: str | None, details: dict) -> None:
    params = {
        "load_id": load_id,
        "status": status,
        "row_count": row_count,
        "error_message": error,
        "details": Jsonb(details),
    }
    closed = conn.execute(read_sql("meta/finish_load.sql"), params).fetchone()
    conn.commit()
    if closed is None:
        raise DatabaseError(f"load {load_id} is not running (already closed or superseded)", source="claimsflow_meta.load_manifest")


def finish_load(conn: psycopg.Connection, load_id: int, row_count: int | None, details: dict[str, Any] | None = None) -> None:
    """Mark a load done with its row count; commits."""
    _close(conn, load_id, "done", row_count, None, details or {})


def fail_load(conn: psycopg.Connection, load_id: int, error: BaseException | str) -> None:
    """Mark a load failed with the error text; rolls back the failed work first, then commits the mark."""
    conn.rollback()
    _close(conn, load_id, "failed", None, str(error)[:4000], {})


def latest_done(conn: psycopg.Connection, target: str) -> dict[str, Any] | None:
    """The newest completed load of `target`, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(read_sql("meta/latest_done.sql"), {"target": target}).fetchone()
