"""(Not named maps.py: Airflow imports every plugins/ file under its bare stem.)

The work of `claimsflow_maps`' tasks: params and connections in (Airflow), `include.maps` in the
middle, cache rows, output files and Asset events out. The DAG file only wires these.

API work is sharded: each mapped task takes shard i of n of the pending identifiers (a stable hash
split in SQL, so no identifier lists travel through XCom) and runs in the API's pool; all shards of
an API share one requests-per-second budget through PgRateLimiter (`shared_limit`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from claimsflow_airflow import assets
from claimsflow_airflow.hooks.endpoint import ClaimsflowHttpHook
from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from claimsflow_airflow.settings import data_root
from include.common.errors import ConfigurationError
from include.common.npi import is_valid_npi
from include.download import sources
from include.maps import cache, hcpcs, npi_api, nppes_bulk, outputs, spending

log = logging.getLogger("claimsflow.maps")

NPI_CONN, HCPCS_CONN = "npi_registry", "clinical_tables"
HF_CONN = "huggingface"  # password = token, host = endpoint (https://huggingface.co)
HF_FLAGS = {"hf_upload_npi": "upload_npi", "hf_upload_hcpcs": "upload_hcpcs",
            "hf_upload_mapping": "upload_npi_mapping", "hf_upload_hcpcs_mapping": "upload_hcpcs_mapping"}
NPI_LIMIT, HCPCS_LIMIT = "npi_registry_api", "clinical_tables_api"  # shared limiter names = pool names


def _run_id(context: Any) -> str:
    return context["run_id"]


def _paths(params: dict[str, Any]) -> dict[str, Path]:
    root = data_root()
    return {
        "spending": Path(params.get("spending_parquet") or sources.raw_dir(root, "medicaid") / "medicaid-provider-spending.parquet"),
        "nppes": Path(params.get("nppes_dir") or sources.raw_dir(root, "nppes")),
        "fallback": Path(params.get("hcpcs_fallback_csv") or sources.raw_dir(root, "cpt", "cpt_hcpcs_fallback.csv")),
        "nucc": sources.raw_dir(root, "nucc"),
    }


def prepare(context: Any) -> dict[str, Any]:
    """Wanted sets from the spending parquet; reset_map; invalid NPIs; whether anything is to do."""
    params = context["params"]
    paths = _paths(params)
    out = outputs.OutputPaths(data_root())
    with ClaimsflowPostgresHook().pg_connection() as conn:
        cache.ensure_schema(conn)
        if params["reset_map"]:
            cache.reset(conn)
            for p in (out.npi_parquet, out.hcpcs_parquet, out.npi_mapping, out.hcpcs_mapping, out.unresolved):
                p.unlink(missing_ok=True)
            log.warning("reset_map: caches and maps cleared")
        ids = spending.distinct_identifiers(paths["spending"])
        cache.replace_wanted(conn, "npi", ids.npi_rows())
        cache.replace_wanted(conn, "hcpcs", ids.code_rows())
        # invalid NPIs are recorded once (a rerun does not restamp them, so outputs stay identical)
        npi_pending = cache.pending(conn, "npi")
        invalid = npi_api.invalid_rows(npi_pending, api_run_id=_run_id(context))
        cache.upsert(conn, "npi", invalid)
        pending = {"npi": len(npi_pending) - len(invalid), "hcpcs": len(cache.pending(conn, "hcpcs"))}
    exists = all(p.exists() for p in (out.npi_parquet, out.hcpcs_parquet, out.npi_mapping, out.hcpcs_mapping))
    complete = exists and not any(pending.values())
    summary = {"spending_rows": ids.rows, "npis": len(ids.npis), "codes": len(ids.codes),
               "invalid_npis": sum(1 for _, ok in ids.npi_rows() if not ok), "invalid_recorded_now": len(invalid),
               "pending": pending, "outputs_exist": exists, "complete": complete,
               "skip": complete and not params["rebuild_map"]}
    log.info("maps: %s", summary)
    return summary


def _skip_if_done(plan: dict[str, Any], what: str) -> None:
    """Resolving steps skip when everything is resolved (rebuild_map then only re-exports from the
    caches); the export skips only when its outputs exist too and no rebuild was asked for."""
    if plan["skip"] or (what != "export" and plan["complete"]):
        raise AirflowSkipException(f"{what}: outputs exist and every identifier is resolved"
                                   + ("" if plan["skip"] else "; rebuild_map: outputs are rebuilt from the caches"))


def npi_bulk(context: Any, plan: dict[str, Any]) -> dict[str, Any]:
    params = context["params"]
    _skip_if_done(plan, "NPPES bulk preload")
    if params["skip_nppes_bulk"]:
        raise AirflowSkipException("skip_nppes_bulk is set")
    paths = _paths(params)
    files = nppes_bulk.find_bulk_files(paths["nppes"])
    nucc = sorted(paths["nucc"].glob("nucc_taxonomy_*.csv"))
    descriptions = nppes_bulk.load_taxonomy_descriptions(nucc[-1]) if nucc else None
    with ClaimsflowPostgresHook().pg_connection() as conn:
        stats = nppes_bulk.preload(conn, files, api_run_id=_run_id(context), taxonomy_descriptions=descriptions)
        left = len(cache.pending(conn, "npi"))
    result = {**_as_dict(stats), "pending_after_bulk": left}
    log.info("NPPES bulk preload: %s", result)
    return result


def _as_dict(stats: Any) -> dict[str, Any]:
    if hasattr(stats, "as_dict"):
        return stats.as_dict()
    return {k: v for k, v in vars(stats).items() if isinstance(v, (int, float, str, list, dict))}


def shards(context: Any, plan: dict[str, Any]) -> list[int]:
    """One mapped API task per shard; `concurrency` shards (the pool caps how many run at once)."""
    params = context["params"]
    _skip_if_done(plan, "API lookups")
    if params["skip_api"]:
        raise AirflowSkipException("skip_api is set: nothing is sent to the APIs")
    n = int(params["concurrency"])
    if n < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {n}")
    return list(range(n))


@contextmanager
def _api_client(conn_id: str, limit_name: str, params: dict[str, Any]) -> Iterator[Any]:
    """The API's client, paced by the limiter every shard of the API shares; released afterwards."""
    hook = ClaimsflowHttpHook(conn_id, rate_limit=float(params["requests_per_second"]), shared_limit=limit_name)
    client = hook.get_client()
    try:
        yield client
    finally:
        client.close()
        hook.close()


def npi_api_shard(context: Any, shard: int) -> dict[str, Any]:
    params = context["params"]
    n = int(params["concurrency"])
    with _api_client(NPI_CONN, NPI_LIMIT, params) as client, ClaimsflowPostgresHook().pg_connection() as conn:
        todo = [x for x in cache.pending(conn, "npi", shard=shard, shards=n) if is_valid_npi(x)]
        log.info("NPI shard %d/%d: %d NPIs to ask the API", shard, n, len(todo))
        stats = npi_api.resolve(conn, client, todo, api_run_id=_run_id(context))
    return _as_dict(stats)


def hcpcs_fallback(context: Any, plan: dict[str, Any]) -> dict[str, Any]:
    params = context["params"]
    _skip_if_done(plan, "HCPCS fallback")
    fallback = hcpcs.read_fallback(_paths(params)["fallback"])
    with ClaimsflowPostgresHook().pg_connection() as conn:
        seeded = hcpcs.seed_fallback(conn, fallback, cache.pending(conn, "hcpcs"), api_run_id=_run_id(context))
        left = len(cache.pending(conn, "hcpcs"))
    return {"fallback_codes": len(fallback), "seeded": seeded, "pending_after_fallback": left}


def hcpcs_api_shard(context: Any, shard: int) -> dict[str, Any]:
    params = context["params"]
    n = int(params["concurrency"])
    fallback = hcpcs.read_fallback(_paths(params)["fallback"])
    with _api_client(HCPCS_CONN, HCPCS_LIMIT, params) as client, ClaimsflowPostgresHook().pg_connection() as conn:
        todo = cache.pending(conn, "hcpcs", shard=shard, shards=n)
        log.info("HCPCS shard %d/%d: %d codes to ask the API", shard, n, len(todo))
        stats = hcpcs.resolve(conn, client, todo, batch_size=int(params["hcpcs_batch_size"]),
                              api_run_id=_run_id(context), fallback=fallback)
    return _as_dict(stats)


def export(context: Any, plan: dict[str, Any]) -> dict[str, Any]:
    """Outputs from the caches (also with skip_api: what is cached is still exported)."""
    params = context["params"]
    _skip_if_done(plan, "export")
    with ClaimsflowPostgresHook().pg_connection() as conn:
        result = outputs.export_all(conn, data_root())
        coverage = {kind: cache.coverage(conn, kind) for kind in ("npi", "hcpcs")}
    report = params.get("unresolved_report_csv")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result["unresolved"]["path"], report)
        result["unresolved"]["copied_to"] = report
    summary = {"npi": _as_dict(result["npi"]), "hcpcs": _as_dict(result["hcpcs"]), "unresolved": result["unresolved"],
               "coverage": coverage}
    context["outlet_events"][assets.MAP_NPI].extra = {
        "parquet": result["npi"].files[0], "rows": result["npi"].rows, "by_status": result["npi"].by_status}
    context["outlet_events"][assets.MAP_HCPCS].extra = {
        "parquet": result["hcpcs"].files[0], "rows": result["hcpcs"].rows, "by_status": result["hcpcs"].by_status}
    log.info("maps written: %s", summary)
    return summary


def hf_upload(context: Any) -> list[dict[str, Any]]:
    """Opt-in: the outputs to a Hugging Face dataset repo; skipped unless `hf_repo_id` and a flag are set.

    Runs after the export even when the export skipped (outputs already there), so a first upload of
    unchanged outputs needs no rebuild; an unchanged remote makes it a no-op (include/maps/hf_upload.py)."""
    params = context["params"]
    repo_id = str(params.get("hf_repo_id") or "").strip()
    flags = {arg: bool(params.get(name)) for name, arg in HF_FLAGS.items()}
    on = [name for name, arg in HF_FLAGS.items() if flags[arg]]
    if not repo_id:
        raise AirflowSkipException("Hugging Face upload: hf_repo_id is empty, nothing is uploaded"
                                   + (f" (ignoring {', '.join(on)})" if on else ""))
    if not on:
        raise AirflowSkipException(f"Hugging Face upload: hf_repo_id is {repo_id} but no hf_upload_* flag is set, "
                                   "nothing is uploaded")
    # imported here: huggingface_hub is only loaded by runs that upload, not at every DAG parse
    from include.maps import hf_upload as hf

    hook = ClaimsflowHttpHook(HF_CONN)
    conn = hook.get_connection(HF_CONN)
    endpoint = hook.endpoint_base(conn) if (conn.host or "").strip() else hf.DEFAULT_ENDPOINT
    results = hf.upload_outputs(
        outputs.OutputPaths(data_root()), repo_id=repo_id, token=conn.password or "", endpoint=endpoint, **flags,
        npi_path_in_repo=params.get("hf_npi_path_in_repo") or hf.DEFAULT_NPI_PATH,
        hcpcs_path_in_repo=params.get("hf_hcpcs_path_in_repo") or hf.DEFAULT_HCPCS_PATH,
        use_xet=bool(params.get("hf_use_xet")))
    log.info("Hugging Face dataset %s: %s", repo_id,
             ", ".join(f"{r['path_in_repo']} {r['status']}" for r in results))
    return results
