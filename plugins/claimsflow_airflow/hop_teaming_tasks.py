"""The work of `claimsflow_hop_teaming`'s tasks: params and the data root in, include/hop_teaming in the
middle, published tables, parquet files and the Asset event out. The DAG file only wires these."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from claimsflow_airflow import assets
from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from claimsflow_airflow.settings import data_root
from include.download import sources
from include.hop_teaming import enrich, export, referral
from include.hop_teaming.load import find_member, find_year_zip, load_year, year_of

log = logging.getLogger("claimsflow.hop_teaming")


def _folder(context: Any) -> Path:
    folder = context["params"].get("input_folder") or ""
    return Path(folder) if folder else sources.raw_dir(data_root(), "hop_teaming")


def years(context: Any) -> list[int]:
    """The `year` param; else the year of a scheduled or backfill run's logical date; else (an asset
    event or a manual run without a year) every year with a zip in the input folder."""
    params = context["params"]
    if params.get("year"):
        return [int(params["year"])]
    logical = context.get("logical_date")
    if logical is not None and context["dag_run"].run_type in ("scheduled", "backfill"):
        return [int(logical.year)]
    import zipfile

    found = set()
    for path in sorted(_folder(context).glob("*.zip")):
        try:
            with zipfile.ZipFile(path) as zf:
                found.add(year_of(find_member(zf, None, str(path)).filename))
        except Exception as exc:
            log.warning("%s: %s", path, exc)
            year = year_of(path.name)
            if year:
                found.add(year)
    found.discard(None)
    if not found:
        raise AirflowSkipException(f"no Hop Teaming zip in {_folder(context)}: nothing to do")
    return sorted(found)


def reference(context: Any) -> dict[str, Any]:
    """NUCC taxonomy and Medicaid spending totals, shared by every year of the run."""
    params, root = context["params"], data_root()
    nucc = Path(params["nucc_csv"]) if params.get("nucc_csv") else None
    if nucc is None:
        found = sorted(sources.raw_dir(root, "nucc").glob("nucc_taxonomy_*.csv"))
        nucc = found[-1] if found else None
    spending = Path(params.get("spending_parquet") or sources.raw_dir(root, "medicaid") / "medicaid-provider-spending.parquet")
    with ClaimsflowPostgresHook().pg_connection() as conn:
        enrich.ensure_schema(conn)
        codes = enrich.load_nucc(conn, nucc) if nucc else 0
        npis = enrich.load_spending(conn, spending)
    if nucc is None:
        log.warning("no NUCC taxonomy CSV: groupings and classifications stay empty")
    return {"nucc": str(nucc) if nucc else None, "taxonomy_codes": codes, "spending_npis": npis}


def load(context: Any, year: int) -> dict[str, Any]:
    zip_path = find_year_zip(_folder(context), year)
    with ClaimsflowPostgresHook().pg_connection() as conn:
        enrich.ensure_schema(conn)
        result = load_year(conn, zip_path, year, schema=enrich.BUILD, table=enrich.names(year)["raw"])
    return {"year": year, "zip": str(zip_path), "member": result.member, "rows": result.rows,
            "refused": result.rejected, "careful_path": result.careful_path, "seconds": round(result.seconds, 2)}


def npis(context: Any, loaded: dict[str, Any]) -> dict[str, Any]:
    root = Path(context["params"].get("nppes_dir") or sources.raw_dir(data_root(), "nppes"))
    rules = _rules(context)
    with ClaimsflowPostgresHook().pg_connection() as conn:
        return {**loaded, **enrich.build_npis(conn, int(loaded["year"]), root, referral.role_sql(rules, alias="t"))}


def _rules(context: Any) -> referral.Rules:
    return referral.load_rules(context["params"].get("referral_rules") or referral.DEFAULT_RULES)


def check_and_enrich(context: Any, built: dict[str, Any]) -> dict[str, Any]:
    rules = _rules(context)
    score = referral.score_sql(rules, alias="e", role_index_columns=("from_role_index", "to_role_index"))
    with ClaimsflowPostgresHook().pg_connection() as conn:
        dq = enrich.check_and_enrich(conn, int(built["year"]), Path(built["member"]).name, score,
                                     float(rules.likely_referral_at_least))
    log.info("%s data quality: %s", built["year"], dq)
    return {**built, "data_quality": dq}


def publish(context: Any, checked: list[dict[str, Any]]) -> dict[str, Any]:
    out_dir = Path(context["params"].get("output_folder") or data_root() / "output" / "hop_teaming")
    published = {}
    with ClaimsflowPostgresHook().pg_connection() as conn:
        for item in checked:
            year = int(item["year"])
            enrich.publish_year(conn, year, source_file=Path(item["member"]).name, zip_path=item["zip"])
            path = export.edges_parquet(conn, year, out_dir)
            published[str(year)] = {"edges": item["data_quality"].get("CLEAN EDGES", 0),
                                    "rejected": item["data_quality"].get("REJECTED LINES", 0), "parquet": str(path)}
    context["outlet_events"][assets.HOP_EDGES].extra = {"years": published}
    return published
