"""The plain tasks of `claimsflow_medicare_processing` (folders from params, the asset event, the QC
report, grants); the SQL steps run in operators/medicare_processing_operators.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from claimsflow_airflow import assets
from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from claimsflow_airflow.settings import data_root
from include.medicare import grant, processing
from include.medicare.qc_report import write_qc_report

log = logging.getLogger("claimsflow.medicare")


def crosswalk_folder(context: Any) -> str:
    folder = context["params"].get("crosswalk_folder") or ""
    return folder or str(data_root() / "restricted" / "medicare_crosswalks")


def published(context: Any) -> dict[str, Any]:
    """The asset event of the published model, with its row counts."""
    with ClaimsflowPostgresHook().pg_connection() as conn:
        counts = processing.summary(conn)
    extra = {"beneficiaries": counts["beneficiaries"],
             "years": {str(y): v for y, v in sorted(counts["years"].items(), key=lambda kv: (kv[0] is None, kv[0] or 0))}}
    context["outlet_events"][assets.MEDICARE_MODEL].extra = extra
    log.info("published medicare model: %s", extra)
    return extra


def qc_report(context: Any) -> str:
    """The HTML QC report of this run under <report_folder> (default <data root>/output/qc)."""
    folder = Path(context["params"].get("report_folder") or data_root() / "output" / "qc")
    run_id = context["ti"].run_id
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run_id)
    path = folder / f"medicare_qc_{safe}.html"
    with ClaimsflowPostgresHook().pg_connection() as conn:
        headline = write_qc_report(conn, path, run_label=run_id)
    log.info("QC report: %s (open it in a browser) %s", path.resolve().as_uri(), headline)
    return str(path)


def grant_select(context: Any) -> list[str]:
    role = (context["params"].get("read_only_role") or "").strip()
    if not role:
        raise AirflowSkipException("no read_only_role given: nothing to grant")
    with ClaimsflowPostgresHook().pg_connection() as conn:
        created = grant.create_role(conn, role)  # NOLOGIN: people get it through their own login roles
        statements = ([created] if created else []) + grant.grant_select(conn, role, grant.DEFAULT_SCHEMAS)
        conn.commit()
    for statement in statements:
        log.info("%s", statement)
    return statements
