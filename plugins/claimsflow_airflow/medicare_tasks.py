"""The work of `claimsflow_medicare_ingest`'s plain tasks (discovery, the asset event); the loading is
done by the operators in operators/fts_operators.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from claimsflow_airflow import assets
from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from claimsflow_airflow.operators.fts_operators import fts_file_ref
from claimsflow_airflow.settings import data_root, run_info
from include.fts_parsers.fts import find_fts_files
from include.medicare import ingest

log = logging.getLogger("claimsflow.medicare")


def run_year(context: Any) -> int:
    """The `year` param for a manual run; else the year of the run's logical date (scheduled yearly,
    backfilled year by year)."""
    params = context["params"]
    if params.get("year"):
        return int(params["year"])
    logical = context.get("logical_date") or context["dag_run"].run_after
    return int(logical.year)


def input_folder(context: Any) -> Path:
    folder = context["params"].get("input_folder") or ""
    return Path(folder) if folder else data_root() / "restricted" / "medicare"


def discover_fwf(context: Any) -> list[dict[str, Any]]:
    """The FTS + .dat sets of the run's year; nothing there: the run skips ingestion cleanly."""
    year = run_year(context)
    params = context["params"]
    if year < int(params["fwf_from_year"]):
        raise AirflowSkipException(f"{year} is before {params['fwf_from_year']}: SAS7BDAT files, not FTS + fixed-width")
    folder = input_folder(context) / str(year)
    if not folder.is_dir():
        raise AirflowSkipException(f"no input folder {folder}: nothing to ingest for {year}")
    files = [f for f in find_fts_files(folder) if f.data]
    if not files:
        raise AirflowSkipException(f"no .fts with data files in {folder}: nothing to ingest for {year}")
    log.info("%d: %s", year, ", ".join(f.fts.name for f in files))
    return [fts_file_ref(f) for f in files]


def discover_sas(context: Any) -> list[str]:
    """The SAS7BDAT files of the run's year (1999-2010: `<year>/denominator/`, `<year>/inpatient/`)."""
    year = run_year(context)
    params = context["params"]
    if year >= int(params["fwf_from_year"]):
        raise AirflowSkipException(f"{year}: FTS + fixed-width files, not SAS7BDAT")
    folder = input_folder(context) / str(year)
    if not folder.is_dir():
        raise AirflowSkipException(f"no input folder {folder}: nothing to ingest for {year}")
    files = ingest.find_sas_files(folder)
    if not files:
        raise AirflowSkipException(f"no .sas7bdat files in {folder}: nothing to ingest for {year}")
    log.info("%d: %s", year, ", ".join(str(p.relative_to(folder)) for p in files))
    return [str(p) for p in files]


def load_sas(context: Any, path: str) -> dict[str, Any]:
    with ClaimsflowPostgresHook().pg_connection() as conn:
        ingest.ensure_schema(conn)
        return ingest.load_sas(conn, Path(path), run_year(context), run=run_info(context)).as_dict()


def publish(context: Any, loads: list[dict[str, Any]]) -> dict[str, Any]:
    year = run_year(context)
    summary = {"year": year, "tables": [f"medicare_raw.{r['table']}" for r in loads],
               "rows": sum(r["rows"] for r in loads), "rejected": sum(r["rejected"] for r in loads),
               "loaded": [r["table"] for r in loads if r["status"] == "loaded"]}
    context["outlet_events"][assets.MEDICARE_RAW].extra = summary
    context["outlet_events"][assets.MEDICARE_RAW_YEARS].add(assets.medicare_raw_year(year), extra=summary)
    return summary
