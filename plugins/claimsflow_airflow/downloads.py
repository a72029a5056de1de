"""The work of the download DAGs' tasks: connections and settings in (Airflow), domain functions
(`include.download`) in the middle, manifest rows and Asset events out. DAG files only wire these."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from claimsflow_airflow import assets
from claimsflow_airflow.hooks.endpoint import ClaimsflowHttpHook
from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from claimsflow_airflow.settings import data_root, run_info
from include.common.errors import DownloadError
from include.download import discover, sources
from include.download import manifest as download_manifest
from include.download.fetch import FetchResult

log = logging.getLogger("claimsflow.download")

SOURCES = ("medicaid", "nppes", "cpt", "nucc", "hop_teaming")
CONNECTIONS = {"medicaid": "medicaid_spending", "nppes": "cms_downloads", "cpt": "cms_www", "nucc": "nucc",
               "hop_teaming": "cms_downloads"}


def wanted(context: Any, source: str) -> None:
    """Skip the task (visibly) when the run's `sources` param leaves this source out."""
    params = context["params"]
    if source not in params["sources"] or (source == "nppes" and params.get("skip_nppes")):
        raise AirflowSkipException(f"{source} not requested in this run (sources={params['sources']})")


def client(source: str):
    return ClaimsflowHttpHook(CONNECTIONS[source]).get_client()


def _record(context: Any, dataset: str, result: FetchResult | None = None, *, status: str | None = None,
            version: str | None = None, url: str = "", path: str = "", error: str | None = None,
            details: dict | None = None) -> None:
    with ClaimsflowPostgresHook().pg_connection() as conn:
        download_manifest.ensure_tables(conn)
        if result is not None:
            download_manifest.record(
                conn, run_info(context), dataset=dataset, version=version, url=result.url, path=result.path,
                status=status or result.status, bytes=result.bytes, bytes_transferred=result.bytes_transferred,
                sha256=result.sha256, etag=result.etag, last_modified=result.last_modified, details=details)
        else:
            download_manifest.record(conn, run_info(context), dataset=dataset, version=version, url=url, path=path,
                                     status=status or "failed", error_message=error, details=details)


def _guard(context: Any, dataset: str, url: str, work: Callable[[], Any]) -> Any:
    """Run `work`; a DownloadError is recorded (status failed) before the task fails with it."""
    try:
        return work()
    except DownloadError as exc:
        status = "quarantined" if "quarantined" in str(exc) else "failed"
        _record(context, dataset, status=status, url=url, path=exc.source or "", error=str(exc))
        raise


def prepare_meta() -> None:
    with ClaimsflowPostgresHook().pg_connection() as conn:
        download_manifest.ensure_tables(conn)


def medicaid(context: Any) -> dict:
    wanted(context, "medicaid")
    url = context["params"]["medicaid_url"]
    http = client("medicaid")
    result = _guard(context, "medicaid_spending", url, lambda: sources.download_medicaid(http, data_root(), url))
    version = _medicaid_version(result.url)
    _record(context, "medicaid_spending", result, version=version)
    context["outlet_events"][assets.RAW_MEDICAID_SPENDING].extra = {
        "file": result.path, "version": version, "bytes": result.bytes, "sha256": result.sha256, "status": result.status}
    return result.to_dict()


def _medicaid_version(url: str) -> str | None:
    # .../medicaid-provider-spending/2026-02-09/medicaid-provider-spending.parquet -> 2026-02-09
    parts = url.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2][:4].isdigit() else None


def nppes_bundles(context: Any) -> list[dict]:
    """The bundles to fetch: the latest monthly and the weekly ones after it (or the pinned URLs)."""
    wanted(context, "nppes")
    params = context["params"]
    http = client("nppes")
    monthly_url, weekly_url = params["nppes_monthly_url"], params["nppes_weekly_url"]
    listing = None
    if not monthly_url or not weekly_url:
        listing = _guard(context, "nppes_index", params["nppes_index_url"] or sources.DEFAULT_NPPES_INDEX_PATH,
                         lambda: sources.nppes_listing(http, params["nppes_index_url"]))
    monthly = sources.pinned_bundle(http.url(monthly_url), "monthly") if monthly_url else listing.latest_monthly
    if weekly_url:
        weekly = [sources.pinned_bundle(http.url(weekly_url), "weekly")]
    else:
        weekly = listing.weekly_after(monthly)
        if not weekly and listing.weekly:
            log.info("no weekly bundle after %s on the index page", monthly.version)
    bundles = [monthly, *weekly]
    log.info("NPPES bundles to fetch: %s", ", ".join(f"{b.kind} {b.version}" for b in bundles))
    return [bundle_ref(b) for b in bundles]


def bundle_ref(bundle: discover.NppesBundle) -> dict:
    """A bundle as it travels through XCom (and into `nppes_bundle`)."""
    return {"kind": bundle.kind, "url": bundle.url, "version": bundle.version}


def nppes_release_bundles(release: dict) -> list[dict]:
    """The bundles of a new release found by the NppesReleaseSensor (its XCom value): the monthly bundle
    and the weekly ones after it. Each is re-parsed from its URL, so a mangled XCom fails here."""
    bundles = [bundle_ref(sources.pinned_bundle(b["url"], b["kind"])) for b in release["bundles"]]
    if not bundles or bundles[0]["kind"] != "monthly":
        raise DownloadError(f"the release names no monthly bundle first: {release['bundles']!r}",
                            source=release.get("index_url"))
    log.info("new NPPES release %s (known: %s); bundles to fetch: %s", release["version"],
             release.get("known_version") or "none", ", ".join(f"{b['kind']} {b['version']}" for b in bundles))
    return bundles


def nppes_bundle(context: Any, bundle: dict) -> dict:
    http = client("nppes")
    parsed = sources.pinned_bundle(bundle["url"], bundle["kind"])
    outcome = _guard(context, f"nppes_{parsed.kind}", parsed.url,
                     lambda: sources.download_nppes_bundle(http, data_root(), parsed))
    _record(context, f"nppes_{parsed.kind}", outcome.fetch, version=parsed.version,
            details={"extracted_to": outcome.extracted_to, "primary_csv": outcome.primary_csv,
                     "extraction_reused": outcome.extraction_reused})
    return {"kind": parsed.kind, "version": parsed.version, "zip": outcome.fetch.path, "folder": outcome.extracted_to,
            "primary_csv": outcome.primary_csv, "status": outcome.fetch.status,
            "bytes_transferred": outcome.fetch.bytes_transferred}


def publish_nppes(context: Any, bundles: list[dict], release: dict | None = None) -> dict:
    """The RAW_NPPES event: the monthly bundle's version, its files and the weekly bundles. With the
    refresh sensor's `release`, also the version it replaces (`previous_version`)."""
    monthly = [b for b in bundles if b["kind"] == "monthly"]
    weekly = sorted((b for b in bundles if b["kind"] == "weekly"), key=lambda b: b["version"])
    extra = {"monthly": monthly[0] if monthly else None, "weekly": weekly,
             "version": monthly[0]["version"] if monthly else None}
    if release is not None:
        extra["previous_version"] = release.get("known_version")
    context["outlet_events"][assets.RAW_NPPES].extra = extra
    return extra


def cpt(context: Any) -> dict:
    wanted(context, "cpt")
    params = context["params"]
    http = client("cpt")
    outcome = _guard(context, "cpt", params["cpt_index_url"] or sources.DEFAULT_CPT_INDEX_PATH,
                     lambda: sources.download_cpt(http, data_root(), index_url=params["cpt_index_url"],
                                                  zip_urls=list(params["cpt_zip_urls"] or [])))
    for result in outcome.archives:
        _record(context, "cpt", result)
    prep = outcome.preparation
    for archive, error in prep.nested.corrupt:
        log.error("corrupt nested zip %s: %s (skipped; the other files were still used)", archive, error)
        _record(context, "cpt", status="corrupt", url="", path=archive, error=error)
    fallback = sources.raw_dir(data_root(), "cpt", "cpt_hcpcs_fallback.csv")
    summary = {"archives": [r.path for r in outcome.archives], "discovered_url": outcome.discovered_url,
               "fallback_csv": str(fallback) if prep.fallback_codes else None, "fallback_codes": prep.fallback_codes,
               "corrupt_nested": [a for a, _ in prep.nested.corrupt], "renamed_folders": prep.renamed,
               "overlay_target": prep.overlay_target}
    context["outlet_events"][assets.RAW_CPT_FALLBACK].extra = {
        "file": summary["fallback_csv"], "codes": prep.fallback_codes}
    return summary


def nucc(context: Any) -> dict:
    wanted(context, "nucc")
    url = context["params"]["nucc_url"]
    http = client("nucc")
    result = _guard(context, "nucc", url, lambda: sources.download_nucc(http, data_root(), url))
    version = discover.file_name(result.url).removesuffix(".csv")
    _record(context, "nucc", result, version=version)
    context["outlet_events"][assets.RAW_NUCC_TAXONOMY].extra = {"file": result.path, "version": version}
    return result.to_dict()


def hop_teaming(context: Any) -> dict:
    wanted(context, "hop_teaming")
    params = context["params"]
    location = params["hop_teaming_location"] or str(Path(data_root(), "restricted", "hop_teaming"))
    years = [int(y) for y in params["hop_teaming_years"] or []]
    files = []
    if location.startswith(("http://", "https://")):
        if not years:
            raise DownloadError("hop_teaming_years is required when the Hop Teaming location is a URL", source=location)
        from include.download.fetch import fetch
        from include.http.client import HttpClient

        http = HttpClient(location)
        for year in years:
            name = sources.hop_teaming_name(year)
            target = sources.raw_dir(data_root(), "hop_teaming") / name
            result = _guard(context, "hop_teaming", f"{location}/{name}",
                            lambda n=name, t=target: fetch(http, n, t, verify=sources.archives.check_zip))
            _record(context, "hop_teaming", result, version=str(year))
            files.append(result.path)
    else:
        folder = Path(location)
        if not years:
            years = sorted(int(p.stem.rsplit("_", 1)[-1]) for p in folder.glob("DocGraph_Hop_Teaming_*.zip")
                           if p.stem.rsplit("_", 1)[-1].isdigit())
            if not years:
                raise DownloadError("no DocGraph_Hop_Teaming_<year>.zip in the folder (the data is licensed: place "
                                    "the files there or set hop_teaming_location)", source=str(folder))
        for year in years:
            path = _guard(context, "hop_teaming", str(folder),
                          lambda y=year: sources.copy_local_hop_teaming(folder, data_root(), y))
            _record(context, "hop_teaming", status="reused", version=str(year), url=str(folder), path=str(path))
            files.append(str(path))
    context["outlet_events"][assets.RAW_HOP_TEAMING].extra = {"files": files, "years": years}
    return {"files": files, "years": years}
