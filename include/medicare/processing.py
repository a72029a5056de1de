"""Medicare in-database processing: the raw per-file tables (`medicare_raw`) into the Medicare data
model (`medicare`), its audit (`medicare_audit`) and QC (`medicare_qc`), following the seed's
"Combining raw files into a single view" through "Creating QC Tables".

A run builds everything from scratch in build schemas (`medicare__next`, …) and swaps them in at the
end in one transaction (`publish`), so readers always see a complete, consistent set, and a failed
run leaves the published tables as they were. Each step is one SQL file in `include/sql/medicare/`;
the two federated views are generated from the raw tables that exist (include/medicare/model.py).

    prepare        build schemas, helper functions, reference tables (states, SSA->FIPS, ZIP->county)
    ps             medicare.ps: every beneficiary summary table, conditioned
    ps_fips        medicare._ps (+ fips3) and medicare_audit.enrollments
    beneficiaries  medicare.beneficiaries
    enrollments    medicare.enrollments
    ip             medicare.ip: every inpatient table, conditioned
    admissions     medicare.admissions + medicare_audit.admissions
    qc             medicare_qc.qc_enrollments / qc_admissions (+ metric views)
    publish        the swap
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from include.common.errors import DatabaseError
from include.common.files import decode_text, read_text
from include.db.postgres import copy_rows, sql_template, validate_identifier
from include.medicare import model
from include.medicare.geography import DATA as REFERENCE_DIR

log = logging.getLogger("claimsflow.medicare")

SCHEMAS = {"medicare": "medicare", "audit": "medicare_audit", "qc": "medicare_qc"}
BUILD_SUFFIX = "__next"
STEPS = ("prepare", "ps", "ps_fips", "beneficiaries", "enrollments", "ip", "admissions", "qc", "publish")


class CrosswalkError(ValueError):
    """A crosswalk file is missing or unreadable; the message names the file and line."""


def build_schemas() -> dict[str, str]:
    return {key: validate_identifier(name + BUILD_SUFFIX) for key, name in SCHEMAS.items()}


def _execute(conn: psycopg.Connection, stmt: sql.Composable, source: str) -> None:
    try:
        conn.execute(stmt)
    except psycopg.Error as exc:
        conn.rollback()
        raise DatabaseError(str(exc).strip(), source=source) from exc


def run_sql_step(conn: psycopg.Connection, name: str) -> float:
    """Run include/sql/medicare/<name>.sql against the build schemas in one transaction."""
    started = time.monotonic()
    _execute(conn, sql_template(f"medicare/{name}.sql", **build_schemas()), f"include/sql/medicare/{name}.sql")
    conn.commit()
    return time.monotonic() - started


# ------------------------------------------------------------------------------------ crosswalks

@dataclass(frozen=True)
class Crosswalks:
    ssa_fips: Path  # SSA state+county -> FIPS state+county (NBER's ssa_fips_state_county layout)
    zip_county: Path  # ZIP -> county FIPS with residential ratio (HUD USPS crosswalk layout)


# NBER's SSA->FIPS crosswalk: `ssacounty` up to the 2010s files, `ssa_code` in the newer ones
# (fipscounty, countyname_fips, state, cbsa_code, cbsa_name, ssa_code, state_name, ...).
SSA_COLUMNS = ("ssacounty", "ssa_code")
SSA_FIPS_COLUMNS = {"fipscounty"}
ZIP_COUNTY_COLUMNS = {"zip", "county", "res_ratio"}


def _header(path: Path) -> list[str]:
    with path.open("rb") as f:
        first = f.readline(65536)
    return [h.strip().strip('"').lower() for h in decode_text(first).strip().split(",")]


def find_crosswalks(folder: Path) -> Crosswalks:
    """The two crosswalk CSVs of `folder`, recognised by their header (any file names)."""
    if not folder.is_dir():
        raise CrosswalkError(f"crosswalk folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.csv")):
        header = set(_header(path))
        if SSA_FIPS_COLUMNS <= header and header & set(SSA_COLUMNS):
            found.setdefault("ssa_fips", path)
        elif ZIP_COUNTY_COLUMNS <= header:
            found.setdefault("zip_county", path)
    missing = [k for k in ("ssa_fips", "zip_county") if k not in found]
    if missing:
        need = {"ssa_fips": {*SSA_FIPS_COLUMNS, "ssacounty or ssa_code"}, "zip_county": ZIP_COUNTY_COLUMNS}
        raise CrosswalkError(f"{folder}: no CSV with the columns of " + "; ".join(
            f"{k} ({', '.join(sorted(need[k]))})" for k in missing))
    return Crosswalks(found["ssa_fips"], found["zip_county"])


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    # small files (tens of thousands of rows); county names may be cp1252, as the NBER files are
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise CrosswalkError(f"{path}:{reader.line_num}: {exc}") from exc


def _digits(value: str | None, width: int, path: Path, line: int, column: str) -> str:
    text = (value or "").strip()
    if not text.isdigit() or len(text) > width:
        raise CrosswalkError(f"{path}:{line}: {column} {value!r} is not a code of up to {width} digits")
    return text.zfill(width)


def ssa_fips_rows(path: Path) -> Iterator[tuple[str, str, str, str, str | None]]:
    """(ssa2, ssa3, fips2, fips3, county name) per county; rows without codes (the empty first row of
    some NBER files, state total lines) are skipped."""
    for line, row in _csv_rows(path):
        ssa_column = next(c for c in SSA_COLUMNS if c in row)
        if not (row.get(ssa_column) or "").strip() or not (row.get("fipscounty") or "").strip():
            continue
        ssa = _digits(row[ssa_column], 5, path, line, ssa_column)
        fips = _digits(row["fipscounty"], 5, path, line, "fipscounty")
        name = (row.get("county") or row.get("countyname_fips") or "").strip() or None
        yield ssa[:2], ssa[2:], fips[:2], fips[2:], name


def zip_county_rows(path: Path) -> Iterator[tuple[int, str, str, float]]:
    for line, row in _csv_rows(path):
        zip5 = _digits(row["zip"], 5, path, line, "zip")
        county = _digits(row["county"], 5, path, line, "county")
        try:
            ratio = float(row["res_ratio"])
        except (TypeError, ValueError) as exc:
            raise CrosswalkError(f"{path}:{line}: res_ratio {row['res_ratio']!r} is not a number") from exc
        yield int(zip5), county[:2], county[2:], ratio


def prepare(conn: psycopg.Connection, crosswalk_folder: Path) -> dict[str, Any]:
    """Fresh build schemas with the helper functions and the reference tables."""
    crosswalks = find_crosswalks(crosswalk_folder)  # before dropping anything: a bad folder changes nothing
    b = build_schemas()
    _execute(conn, sql_template("medicare/prepare.sql", **b), "include/sql/medicare/prepare.sql")
    with (REFERENCE_DIR / "us_states.csv").open(newline="", encoding="utf-8") as f:
        states = [(r["ssa2"], r["state_id"], r["fips2"], r["state_name"]) for r in csv.DictReader(f)]
    counts = {
        "us_states": copy_rows(conn, (b["medicare"], "us_states"), ("ssa2", "state_id", "fips2", "state_name"), states),
        "ssa_fips": copy_rows(conn, (b["medicare"], "ssa_fips"), ("ssa2", "ssa3", "fips2", "fips3", "county_name"),
                              ssa_fips_rows(crosswalks.ssa_fips)),
        "zip_county": copy_rows(conn, (b["medicare"], "zip_county"), ("zip", "fips2", "fips3", "res_ratio"),
                                zip_county_rows(crosswalks.zip_county)),
    }
    _execute(conn, sql_template("medicare/crosswalk_lookups.sql", **b), "include/sql/medicare/crosswalk_lookups.sql")
    conn.commit()
    log.info("reference tables: %s (crosswalks %s, %s)", counts, crosswalks.ssa_fips, crosswalks.zip_county)
    return {"reference_rows": counts, "ssa_fips": str(crosswalks.ssa_fips), "zip_county": str(crosswalks.zip_county)}


def build_view(conn: psycopg.Connection, kind: str) -> dict[str, Any]:
    """medicare.ps ("ps") or medicare.ip ("ip") over the raw tables that exist now."""
    b = build_schemas()
    stmt, tables = model.union_view(conn, b["medicare"], kind, kind)
    _execute(conn, stmt, f"medicare.{kind} over {', '.join(t.name for t in tables)}")
    conn.commit()
    log.info("medicare.%s over %d raw tables: %s", kind, len(tables), ", ".join(t.name for t in tables))
    return {"view": f"medicare.{kind}", "tables": [t.name for t in tables], "years": sorted({t.year for t in tables})}


def publish(conn: psycopg.Connection, *, lock_timeout_s: float = 300) -> None:
    """Swap the build schemas in (one transaction)."""
    names = {**SCHEMAS, **{f"{k}_next": v for k, v in build_schemas().items()},
             **{f"{k}_old": validate_identifier(v + "__old") for k, v in SCHEMAS.items()}}
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
    _execute(conn, sql_template("medicare/publish.sql", **names), "include/sql/medicare/publish.sql")
    conn.commit()


def run_step(conn: psycopg.Connection, step: str, *, crosswalk_folder: Path | None = None) -> dict[str, Any]:
    """One step of the pipeline (see STEPS), with its duration."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
    started = time.monotonic()
    if step == "prepare":
        if crosswalk_folder is None:
            raise ValueError("prepare needs the crosswalk folder")
        out = prepare(conn, crosswalk_folder)
    elif step in ("ps", "ip"):
        out = build_view(conn, step)
    elif step == "publish":
        publish(conn)
        out = {}
    else:
        run_sql_step(conn, step)
        out = {}
    out["step"], out["seconds"] = step, round(time.monotonic() - started, 3)
    log.info("step %s: %.1fs", step, out["seconds"])
    return out


def run_all(conn: psycopg.Connection, crosswalk_folder: Path) -> list[dict[str, Any]]:
    """The whole pipeline in order (the DAG runs the same steps as tasks)."""
    return [run_step(conn, step, crosswalk_folder=crosswalk_folder) for step in STEPS]


def summary(conn: psycopg.Connection, schemas: dict[str, str] | None = None) -> dict[str, Any]:
    """Row counts of the published model, per year where it has one (for logs, asset events, tests)."""
    s = schemas or SCHEMAS
    stmt = sql_template("medicare/summary.sql", **s)
    rows = conn.execute(stmt).fetchall()
    out: dict[str, Any] = {"beneficiaries": 0, "years": {}}
    for kind, year, key, value in rows:
        if kind == "total":
            out[key] = value
        else:
            out["years"].setdefault(year, {})[key] = value
    return out
