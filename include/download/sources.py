"""One function per public source: where it comes from, where it goes under the data root, how it is
verified. The DAG tasks call these with an HttpClient built from the source's Airflow connection.

Data root layout (the seed's):  raw/medicaid/, raw/nppes/{monthly,weekly}/<bundle>.zip + <bundle>/,
raw/cpt/archives/ + cpt_hcpcs_fallback.csv, raw/nucc/, raw/hop_teaming/.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from include.common.errors import DownloadError
from include.download import archives, cpt, discover
from include.download.fetch import FetchResult, fetch, quarantine
from include.http.client import HttpClient

log = logging.getLogger("claimsflow.download")

MEDICAID_COLUMNS = (
    "BILLING_PROVIDER_NPI_NUM",
    "SERVICING_PROVIDER_NPI_NUM",
    "HCPCS_CODE",
    "CLAIM_FROM_MONTH",
    "TOTAL_UNIQUE_BENEFICIARIES",
    "TOTAL_CLAIMS",
    "TOTAL_PAID",
)
DEFAULT_MEDICAID_PATH = "/datasets/medicaid-provider-spending/2026-02-09/medicaid-provider-spending.parquet"
DEFAULT_NPPES_INDEX_PATH = "/nppes/NPI_Files.html"
DEFAULT_CPT_INDEX_PATH = "/medicare/payment/fee-schedules/physician/national-payment-amount-file/pfrev26a"
DEFAULT_NUCC_PATH = "/images/stories/CSV/nucc_taxonomy_251.csv"
NPPES_PRIMARY_HEADER = {"NPI", "Entity Type Code"}
NPPES_NAME_HEADERS = ({"Provider Organization Name (Legal Business Name)"}, {"Provider First Name", "Provider Last Name (Legal Name)"})


def raw_dir(data_root: Path, *parts: str) -> Path:
    return Path(data_root, "raw", *parts)


# ---------------------------------------------------------------------------------------------- Medicaid


def check_spending_parquet(path: Path) -> None:
    """Readable parquet (footer + schema) with the seven published columns; reads no row data."""
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(path).schema_arrow
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for anything unreadable
        raise DownloadError(f"not a readable parquet file ({exc})", source=str(path)) from exc
    missing = [c for c in MEDICAID_COLUMNS if c not in schema.names]
    if missing:
        raise DownloadError(f"parquet lacks the column(s) {', '.join(missing)}; has {', '.join(schema.names)}",
                            source=str(path))


def download_medicaid(client: HttpClient, data_root: Path, url: str = "", *, force: bool = False) -> FetchResult:
    url = url or DEFAULT_MEDICAID_PATH
    target = raw_dir(data_root, "medicaid") / discover.file_name(client.url(url))
    return fetch(client, url, target, verify=check_spending_parquet, force=force, label="Medicaid spending parquet")


# ---------------------------------------------------------------------------------------------- NPPES


def find_primary_csv(folder: Path) -> Path:
    """The npidata file of an extracted bundle: the largest CSV whose header has NPI, Entity Type Code
    and the name columns (endpoint/othername/pl files do not)."""
    best: Path | None = None
    for path in folder.rglob("*.csv"):
        if path.name.lower().endswith("_fileheader.csv"):
            continue
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            header = set(next(csv.reader(f), []))
        if NPPES_PRIMARY_HEADER <= header and any(names <= header for names in NPPES_NAME_HEADERS):
            if best is None or path.stat().st_size > best.stat().st_size:
                best = path
    if best is None:
        raise DownloadError("no npidata CSV (header with NPI, Entity Type Code and provider names) in the bundle",
                            source=str(folder))
    return best


@dataclass
class BundleOutcome:
    bundle: discover.NppesBundle
    fetch: FetchResult
    extracted_to: str
    primary_csv: str
    extraction_reused: bool


def fetch_and_extract(client: HttpClient, url: str, dest_folder: Path, *, label: str,
                      on_corrupt: Callable[[Path, str], None] | None = None) -> tuple[FetchResult, archives.Extraction]:
    """Download a zip (tested before it counts as done) and extract it beside itself; a zip whose
    members fail their CRC on extraction is quarantined so the next run downloads it again."""
    name = discover.file_name(client.url(url))
    target = dest_folder / name
    result = fetch(client, url, target, verify=archives.check_zip, label=label)
    try:
        extraction = archives.extract_zip(target, dest_folder / name.removesuffix(".zip").removesuffix(".ZIP"))
    except DownloadError as exc:
        if target.exists():
            where = quarantine(target, str(exc))
            Path(str(target) + ".download.json").unlink(missing_ok=True)
            if on_corrupt:
                on_corrupt(where, str(exc))
            raise DownloadError(f"{exc.message}; the zip was quarantined to {where} and will be downloaded again",
                                source=exc.source) from exc
        raise
    return result, extraction


def download_nppes_bundle(client: HttpClient, data_root: Path, bundle: discover.NppesBundle) -> BundleOutcome:
    folder = raw_dir(data_root, "nppes", bundle.kind)
    result, extraction = fetch_and_extract(client, bundle.url, folder, label=f"NPPES {bundle.kind} {bundle.version}")
    primary = find_primary_csv(Path(extraction.target))
    return BundleOutcome(bundle, result, extraction.target, str(primary), extraction.reused)


def nppes_listing(client: HttpClient, index_url: str = "") -> discover.NppesListing:
    page_url = client.url(index_url or DEFAULT_NPPES_INDEX_PATH)
    return discover.nppes_bundles(client.get_text(page_url), page_url)


def pinned_bundle(url: str, kind: str) -> discover.NppesBundle:
    bundle = discover.classify_nppes(url)
    if bundle is None or bundle.kind != kind:
        raise DownloadError(f"not an NPPES {kind} V2 bundle name", source=url)
    return bundle


# ---------------------------------------------------------------------------------------------- CPT / HCPCS


@dataclass
class CptOutcome:
    archives: list[FetchResult] = field(default_factory=list)
    discovered_url: str | None = None
    preparation: cpt.CptPreparation | None = None


def download_cpt(client: HttpClient, data_root: Path, *, index_url: str = "", zip_urls: list[str] | None = None,
                 overlay_root: Path | None = cpt.SHIPPED_OVERLAYS) -> CptOutcome:
    """Fetch the archives (given, or discovered when raw/cpt holds no source yet), then prepare."""
    root = raw_dir(data_root, "cpt")
    archive_dir = root / "archives"
    archive_dir.mkdir(parents=True, exist_ok=True)
    outcome = CptOutcome()
    urls = list(zip_urls or [])
    if not urls and not _has_cpt_archive(root):
        page_url = client.url(index_url or DEFAULT_CPT_INDEX_PATH)
        outcome.discovered_url = discover.cpt_archive(client.get_text(page_url), page_url)
        urls = [outcome.discovered_url]
        log.info("no local CPT/HCPCS source; discovered %s on %s", outcome.discovered_url, page_url)
    for url in urls:
        name = discover.file_name(client.url(url))
        outcome.archives.append(fetch(client, url, archive_dir / name, verify=archives.check_zip, label=f"CPT archive {name}"))
    outcome.preparation = cpt.prepare(root, overlay_root)
    return outcome


def _has_cpt_archive(root: Path) -> bool:
    """Local source data, ignoring our own derived fallback: a re-run after a fetched archive reuses it
    (and revalidates it through the sidecar), a user-placed file stops discovery."""
    archive_dir = root / "archives"
    if archive_dir.is_dir() and any(p.suffix.lower() == ".zip" for p in archive_dir.iterdir()):
        return True
    return any(p.is_file() and p.suffix.lower() in {".zip", ".csv", ".txt", ".tsv"} and p.name != cpt.FALLBACK_NAME
               and "archives" not in p.relative_to(root).parts for p in root.rglob("*"))


# ---------------------------------------------------------------------------------------------- NUCC


def check_nucc_csv(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(4096)
    text = head.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    if not first.lower().startswith("code,") or "classification" not in first.lower():
        raise DownloadError(f"not the NUCC taxonomy CSV (header {first[:80]!r})", source=str(path))


def download_nucc(client: HttpClient, data_root: Path, url: str = "") -> FetchResult:
    url = url or DEFAULT_NUCC_PATH
    target = raw_dir(data_root, "nucc") / discover.file_name(client.url(url))
    return fetch(client, url, target, verify=check_nucc_csv, label="NUCC taxonomy")


# ---------------------------------------------------------------------------------------------- Hop Teaming


def hop_teaming_name(year: int) -> str:
    return f"DocGraph_Hop_Teaming_{year}.zip"


def copy_local_hop_teaming(folder: Path, data_root: Path, year: int) -> Path:
    """Licensed data the user placed in a folder: verified and copied (atomically) into raw/."""
    matches = sorted(p for p in Path(folder).glob("*") if p.name.lower() == hop_teaming_name(year).lower())
    if not matches:
        raise DownloadError(f"no {hop_teaming_name(year)} in the Hop Teaming folder", source=str(folder))
    source = matches[0]
    archives.check_zip(source)
    target = raw_dir(data_root, "hop_teaming") / hop_teaming_name(year)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and target.stat().st_size == source.stat().st_size and target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        log.info("%s: already copied; skipped", target.name)
        return target
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target
