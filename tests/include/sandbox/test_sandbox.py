"""The sandbox against the reference facts: generated files, manifest counts, and the server's API
shapes, faults and rate limit."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from include.sandbox import nppes, providers
from include.sandbox.core import MEDICAID_PATH, Manifest, is_valid_npi
from include.sandbox.generate import generate
from include.sandbox.server import SandboxServer

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"


def test_npidata_header_is_the_reference_header(tiny_sandbox):
    reference = REFERENCE / "nppes_npidata_header.csv"
    if not reference.exists():
        pytest.skip("../shared/reference is not beside the checkout")
    expected = next(csv.reader(reference.open()))
    assert nppes.HEADER == expected and len(expected) == 330
    bundle = tiny_sandbox / "site" / "nppes" / "NPPES_Data_Dissemination_November_2026_V2.zip"
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        main = next(n for n in names if n.startswith("npidata_pfile_") and not n.endswith("_fileheader.csv"))
        assert main == "npidata_pfile_20050523-20261110.csv"
        for prefix in ("endpoint_pfile_", "othername_pfile_", "pl_pfile_"):
            assert any(n.startswith(prefix) and not n.endswith("_fileheader.csv") for n in names)
            assert any(n.startswith(prefix) and n.endswith("_fileheader.csv") for n in names)
        with zf.open(main) as f:
            text = io.TextIOWrapper(f, encoding="utf-8", newline="")
            first = text.readline()
            assert first.startswith('"NPI","Entity Type Code"')
            rows = list(csv.reader(text))
    assert next(csv.reader([first])) == expected
    manifest = Manifest.read(tiny_sandbox)
    assert len(rows) == manifest.counts["nppes.monthly_rows"]
    assert all(is_valid_npi(r[0]) for r in rows)
    deactivated = [r for r in rows if r[nppes.COLUMN["NPI Deactivation Date"]]]
    assert len(deactivated) == manifest.counts["nppes.deactivated"]
    assert all(sum(1 for v in r if v) == 2 for r in deactivated)  # NPI + date only


def test_weekly_rows_are_newer_than_their_monthly_rows(tiny_sandbox):
    folder = tiny_sandbox / "site" / "nppes"

    def rows(zip_path):
        with zipfile.ZipFile(zip_path) as zf:
            main = next(n for n in zf.namelist() if n.startswith("npidata") and not n.endswith("_fileheader.csv"))
            return {r[0]: r for r in csv.reader(io.TextIOWrapper(zf.open(main), encoding="utf-8")) if r[0] != "NPI"}

    monthly = rows(folder / "NPPES_Data_Dissemination_November_2026_V2.zip")
    updated = new = 0
    for weekly in folder.glob("*_Weekly_V2.zip"):
        for npi, row in rows(weekly).items():
            if npi in monthly:
                updated += 1
                col = nppes.COLUMN["Last Update Date"]
                m, w = monthly[npi][col], row[col]
                assert (w[6:], w[:2], w[3:5]) > (m[6:], m[:2], m[3:5])
            else:
                new += 1
    manifest = Manifest.read(tiny_sandbox)
    assert updated == manifest.counts["spending.category.weekly_update"]
    assert new == manifest.counts["spending.category.weekly_new"]


def test_spending_parquet_schema_and_planted_counts(tiny_sandbox):
    manifest = Manifest.read(tiny_sandbox)
    table = pq.read_table(tiny_sandbox / "site" / MEDICAID_PATH)
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("BILLING_PROVIDER_NPI_NUM", "string"), ("SERVICING_PROVIDER_NPI_NUM", "string"), ("HCPCS_CODE", "string"),
        ("CLAIM_FROM_MONTH", "date32[day]"), ("TOTAL_UNIQUE_BENEFICIARIES", "int64"), ("TOTAL_CLAIMS", "int64"),
        ("TOTAL_PAID", "double")]
    assert table.num_rows == manifest.counts["spending.rows"]
    npis = set(table.column("BILLING_PROVIDER_NPI_NUM").to_pylist()) | {
        v for v in table.column("SERVICING_PROVIDER_NPI_NUM").to_pylist() if v is not None}
    assert len(npis) == manifest.counts["spending.distinct_npis"]
    invalid = sorted(n for n in npis if len(n) == 10 and n.isdigit() and not is_valid_npi(n))
    assert len(invalid) == manifest.defects["medicaid.invalid_npi_check_digit"]["count"]
    garbage = {n for n in npis if not (len(n) == 10 and n.isdigit())}
    assert len(garbage) == manifest.defects["medicaid.garbage_npi"]["count"]
    assert len(set(table.column("HCPCS_CODE").to_pylist())) == manifest.counts["spending.distinct_hcpcs"]
    benes = table.column("TOTAL_UNIQUE_BENEFICIARIES").to_pylist()
    claims = table.column("TOTAL_CLAIMS").to_pylist()
    assert min(benes) >= 11 and all(c >= b for b, c in zip(benes, claims, strict=True))


def test_generation_is_deterministic(tmp_path):
    a = generate(tmp_path / "a", "tiny", seed=7, only=["nppes", "medicaid"])
    b = generate(tmp_path / "b", "tiny", seed=7, only=["nppes", "medicaid"])
    digest = {k: v["sha256"] for k, v in a.files.items()}
    assert digest == {k: v["sha256"] for k, v in b.files.items()}
    c = generate(tmp_path / "c", "tiny", seed=8, only=["medicaid"])
    assert c.files[f"site/{MEDICAID_PATH}"]["sha256"] != digest[f"site/{MEDICAID_PATH}"]


def test_npi_api_answers_in_the_real_shapes(sandbox_server, tiny_sandbox):
    manifest = Manifest.read(tiny_sandbox)
    spending = manifest.scale["spending_npis"]
    by_category: dict[str, providers.Provider] = {}
    for i in range(spending):
        p = providers.provider(manifest.seed, i, spending)
        by_category.setdefault(p.category, p)
    url = sandbox_server.url + "/api/"
    known = by_category["api_only"]
    body = requests.get(url, params={"version": "2.1", "number": known.npi}, timeout=5).json()
    assert body["result_count"] == 1 and body["results"][0]["number"] == known.npi
    assert set(body["results"][0]) >= {"basic", "addresses", "taxonomies", "identifiers", "enumeration_type"}
    for category in ("nowhere", "invalid"):
        body = requests.get(url, params={"version": "2.1", "number": by_category[category].npi}, timeout=5).json()
        assert body == {"result_count": 0, "results": []}
    bad = requests.get(url, params={"version": "2.1", "number": "12345"}, timeout=5)
    assert bad.status_code == 200 and bad.json()["Errors"][0]["field"] == "number"
    assert "Errors" in requests.get(url, params={"version": "2.0", "number": known.npi}, timeout=5).json()
    search = requests.get(url, params={"version": "2.1", "state": known.location.state, "limit": 5}, timeout=5).json()
    assert 1 <= search["result_count"] <= 5
    assert all(r["addresses"][0]["state"] == known.location.state for r in search["results"])


def test_clinical_tables_or_query(sandbox_server, tiny_sandbox):
    from include.sandbox.codes import codes

    manifest = Manifest.read(tiny_sandbox)
    universe = codes(manifest.seed, manifest.scale["hcpcs_codes"])
    api = [c for c in universe if c.source == "api"][:3]
    other = [c for c in universe if c.source != "api"][:2]
    q = "code:(" + " OR ".join(c.code for c in api + other) + ")"
    body = requests.get(sandbox_server.url + "/api/hcpcs/v3/search",
                        params={"terms": "", "sf": "code", "q": q, "count": 500, "df": "code,display",
                                "ef": "short_desc,long_desc,add_dt,term_dt,act_eff_dt,obsolete,is_noc"}, timeout=5).json()
    total, returned, extra, display = body
    assert total == 3 and sorted(returned) == sorted(c.code for c in api)
    assert set(extra) == {"short_desc", "long_desc", "add_dt", "term_dt", "act_eff_dt", "obsolete", "is_noc"}
    assert all(len(v) == 3 for v in extra.values()) and [d[0] for d in display] == returned


def test_faults_and_request_log(sandbox_server):
    url = sandbox_server.url + "/nppes/NPI_Files.html"
    sandbox_server.clear_requests()
    sandbox_server.inject("429", path="/nppes/", retry_after=3)
    sandbox_server.inject("5xx", path="/nppes/", status=502)
    sandbox_server.inject("malformed_json", path="/api/")
    first = requests.get(url, timeout=5)
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert requests.get(url, timeout=5).status_code == 502
    assert requests.get(url, timeout=5).status_code == 200
    with pytest.raises(ValueError):
        requests.get(sandbox_server.url + "/api/", params={"version": "2.1", "number": "1234567893"}, timeout=5).json()
    sandbox_server.inject("timeout", path="/nppes/", delay=1.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=0.5)
    log = sandbox_server.requests("/nppes/")
    assert [r.status for r in log[:3]] == [429, 502, 200] and [r.fault for r in log[:2]] == ["429", "5xx"]
    assert requests.get(sandbox_server.url + "/../../etc/passwd", timeout=5).status_code == 404
    assert requests.get(sandbox_server.url + "/nppes/%2e%2e/%2e%2e/manifest.json", timeout=5).status_code == 404


def test_enforced_rate_limit(tiny_sandbox):
    with SandboxServer(tiny_sandbox, rate_limit=2, burst=2) as server:
        url = server.url + "/api/"
        statuses = [requests.get(url, params={"version": "2.1", "number": "1234567893"}, timeout=5) for _ in range(6)]
        codes = [r.status_code for r in statuses]
        assert codes[:2] == [200, 200] and codes.count(429) >= 3
        assert all(int(r.headers["Retry-After"]) >= 1 for r in statuses if r.status_code == 429)
        # each API has its own budget, as the real NPI Registry and Clinical Tables do
        hcpcs = requests.get(server.url + "/api/hcpcs/v3/search", params={"terms": "J1100", "sf": "code"}, timeout=5)
        assert hcpcs.status_code == 200
        time.sleep(1.1)
        assert requests.get(url, params={"version": "2.1", "number": "1234567893"}, timeout=5).status_code == 200
        # Static downloads are not rate limited.
        assert all(requests.get(server.url + "/nppes/NPI_Files.html", timeout=5).status_code == 200 for _ in range(5))


def test_publish_monthly_adds_a_linked_bundle(sandbox_copy):
    from include.download import discover

    path = nppes.publish_monthly(sandbox_copy, 2026, 12)
    page = (sandbox_copy / "site" / "nppes" / "NPI_Files.html").read_text()
    listing = discover.nppes_bundles(page, "http://x/nppes/NPI_Files.html")
    assert listing.latest_monthly.name == path.name == "NPPES_Data_Dissemination_December_2026_V2.zip"
    assert Manifest.read(sandbox_copy).files[f"site/nppes/{path.name}"]["rows"] > 0
