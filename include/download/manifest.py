"""`claimsflow_meta.download_manifest`: a row per file fetched (or rejected) by the download DAGs."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from include.db.postgres import read_sql, run_sql_file
from include.meta.manifest import RunInfo


def ensure_tables(conn: psycopg.Connection) -> None:
    run_sql_file(conn, "download/create_tables.sql")
    conn.commit()


def record(
    conn: psycopg.Connection,
    run: RunInfo,
    *,
    dataset: str,
    url: str,
    path: str,
    status: str,
    version: str | None = None,
    bytes: int | None = None,
    bytes_transferred: int | None = None,
    sha256: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    error_message: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Insert one outcome and commit it at once (a later failure of the task must not roll it back)."""
    params = {
        "dataset": dataset, "version": version, "url": url, "path": path, "bytes": bytes,
        "bytes_transferred": bytes_transferred, "sha256": sha256, "etag": etag, "last_modified": last_modified,
        "status": status, "error_message": error_message, "dag_id": run.dag_id, "run_id": run.run_id,
        "task_id": run.task_id, "details": Jsonb(details or {}),
    }
    download_id = conn.execute(read_sql("download/record.sql"), params).fetchone()[0]
    conn.commit()
    return download_id


def latest_version(conn: psycopg.Connection, dataset: str) -> str | None:
    row = conn.execute(read_sql("download/latest_version.sql"), {"dataset": dataset}).fetchone()
    return row[0] if row else None
