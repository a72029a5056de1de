"""The platform health check: is everything claimsflow needs in place on this deployment?

It proves, against the real database and data root, what every later DAG relies on: the server answers,
the `hll` extension is installed, COPY streams rows, HyperLogLog estimates them, and the data root is
writable with free space. The result is one row in `claimsflow_meta.healthcheck`.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from include.common.errors import ConfigurationError, DatabaseError
from include.db.postgres import copy_rows, read_sql
from include.meta.manifest import RunInfo, ensure_meta_schema

HLL_TOLERANCE = 0.05  # hll's default precision (log2m=11) estimates within ~2.3 %; 5 % is a safe bound


def check_data_root(root: Path) -> int:
    """Write, read back and remove a probe file under `work/`; return the free bytes."""
    probe = root / "work" / f".healthcheck-{uuid.uuid4().hex}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"claimsflow")
        if probe.read_bytes() != b"claimsflow":
            raise ConfigurationError("the probe file read back differs from what was written", source=str(probe))
    except OSError as exc:
        raise ConfigurationError(f"the data root is not writable: {exc.strerror}", source=str(root)) from exc
    finally:
        if probe.is_file():
            probe.unlink()
    return shutil.disk_usage(root).free


def run_healthcheck(conn: psycopg.Connection, data_root: Path, run: RunInfo, rows: int = 10_000) -> dict[str, Any]:
    """Run every check, record the result, and return it. Raises on the first failed check."""
    data_root = Path(data_root)
    server_version = conn.execute("SHOW server_version").fetchone()[0]
    hll = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'hll'").fetchone()
    if hll is None:
        raise DatabaseError(
            "the hll extension is not installed in this database (CREATE EXTENSION hll as a superuser)",
            source=conn.info.dbname,
        )
    free = check_data_root(data_root)
    ensure_meta_schema(conn)

    conn.execute(read_sql("meta/healthcheck_probe.sql"))
    started = time.perf_counter()
    copied = copy_rows(conn, "healthcheck_probe", ["id", "label"], ((i, f"row {i}") for i in range(rows)))
    seconds = time.perf_counter() - started
    estimate, counted = conn.execute(read_sql("meta/healthcheck_hll.sql")).fetchone()
    if counted != rows or copied != rows:
        raise DatabaseError(f"COPY wrote {counted} rows, expected {rows}", source="healthcheck_probe")
    if abs(estimate - rows) > HLL_TOLERANCE * rows:
        raise DatabaseError(f"hll estimated {estimate} distinct ids for {rows}", source="healthcheck_probe")

    result = {
        "run_id": run.run_id,
        "server_version": server_version,
        "hll_version": hll[0],
        "copy_rows": copied,
        "copy_seconds": seconds,
        "hll_estimate": estimate,
        "data_root": str(data_root),
        "data_root_free_bytes": free,
    }
    conn.execute(read_sql("meta/record_healthcheck.sql"), result)
    conn.commit()
    return result
