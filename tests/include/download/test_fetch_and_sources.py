"""Downloads against the sandbox server: resume with Range, revalidation, verification, quarantine,
discovery, extraction safety and the CPT fallback derivation."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

import pytest

from include.common.errors import DownloadError
from include.download import archives, cpt, discover, sources
from include.download.fetch import fetch, part_path, sha256_of, sidecar_path
from include.http.client import HttpClient, RetryPolicy
from include.sandbox.core import MEDICAID_PATH, Manifest

FAST = RetryPolicy(attempts=3, backoff=0.01)


def client(server) -> HttpClient:
    return HttpClient(server.url, retry=FAST, timeout=(2, 5))


def test_medicaid_download_then_304_then_reuse(sandbox_server, tmp_path, tiny_sandbox):
    http = client(sandbox_server)
    first = sources.download_medicaid(http, tmp_path)
    expected = Manifest.read(tiny_sandbox).files[f"site/{MEDICAID_PATH}"]
    assert first.status == "downloaded" and first.bytes == expected["bytes"] and first.sha256 == expected["sha256"]
    assert first.bytes_transferred == expected["bytes"]
    sandbox_server.clear_requests()
    second = sources.download_medicaid(http, tmp_path)
    assert second.status == "unchanged" and second.bytes_transferred == 0
    [req] = sandbox_server.requests()
    assert req.status == 304 and req.bytes_sent == 0


def test_a_cut_download_resumes_where_it_stopped(sandbox_server, tmp_path, tiny_sandbox):
    http = client(sandbox_server)
    path = "/" + MEDICAID_PATH
    size = Manifest.read(tiny_sandbox).files[f"site/{MEDICAID_PATH}"]["bytes"]
    sandbox_server.clear_requests()
    sandbox_server.inject("truncate", path=path, count=1, fraction=0.9)
    result = fetch(http, path, tmp_path / "spending.parquet", verify=sources.check_spending_parquet)
    assert result.status == "resumed" and result.bytes == size
    # hashed on the way in, across the cut: the digest is the file's
    assert result.sha256 == Manifest.read(tiny_sandbox).files[f"site/{MEDICAID_PATH}"]["sha256"]
    reqs = sandbox_server.requests(path)
    assert [r.status for r in reqs] == [200, 206]
    cut = reqs[0].bytes_sent  # what the server sent before it dropped the connection
    kept = int(reqs[1].range.removeprefix("bytes=").rstrip("-"))  # what the client had safely on disk
    assert 0 < kept <= cut < size
    assert reqs[1].bytes_sent == size - kept  # only the rest came again


def test_partial_file_survives_a_failed_run_and_is_resumed_next_time(sandbox_server, tmp_path):
    http = HttpClient(sandbox_server.url, retry=FAST, timeout=(2, 5))
    path = "/" + MEDICAID_PATH
    target = tmp_path / "spending.parquet"
    sandbox_server.inject("truncate", path=path, count=2, fraction=0.3)
    with pytest.raises(DownloadError, match="incomplete after 2 attempts.*next run resumes"):
        fetch(http, path, target, attempts=2)
    assert part_path(target).stat().st_size > 0 and not target.exists() and not sidecar_path(target).exists()
    sandbox_server.clear_requests()
    result = fetch(http, path, target, verify=sources.check_spending_parquet)
    assert result.status == "resumed"
    assert sandbox_server.requests(path)[0].range.startswith("bytes=")
    assert result.sha256 == sha256_of(target), "the .part of the earlier run is hashed before the rest arrives"


def test_parquet_missing_a_column_is_quarantined(sandbox_copy, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.sandbox.server import SandboxServer

    bad = sandbox_copy / "site" / MEDICAID_PATH
    table = pq.read_table(bad).drop(["TOTAL_PAID"])
    pq.write_table(table, bad)
    with SandboxServer(sandbox_copy) as server:
        with pytest.raises(DownloadError, match="quarantined.*lacks the column.*TOTAL_PAID"):
            sources.download_medicaid(client(server), tmp_path)
    target = tmp_path / "raw" / "medicaid" / "medicaid-provider-spending.parquet"
    assert not target.exists()
    assert len(list((target.parent / ".quarantine").glob("medicaid-provider-spending.parquet.*"))) == 2  # file + reason
    assert pa  # pyarrow imported for the rewrite above


def test_404_and_unwritable_folder_fail_clearly(sandbox_server, tmp_path):
    http = client(sandbox_server)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(http, "/nope/missing.zip", tmp_path / "missing.zip")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DownloadError, match="cannot create the folder"):
        fetch(http, "/" + MEDICAID_PATH, blocker / "raw" / "x.parquet")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere; the case above covers it
            with pytest.raises(DownloadError, match="not writable"):
                fetch(http, "/" + MEDICAID_PATH, locked / "x.parquet")
    finally:
        os.chmod(locked, 0o700)


def test_nppes_discovery_download_and_extraction(sandbox_server, tmp_path, tiny_sandbox):
    http = client(sandbox_server)
    listing = sources.nppes_listing(http)
    manifest = Manifest.read(tiny_sandbox)
    assert listing.latest_monthly.name == "NPPES_Data_Dissemination_November_2026_V2.zip"
    weekly = listing.weekly_after(listing.latest_monthly)
    assert len(weekly) == manifest.scale["weekly_files"] and weekly == sorted(weekly)
    outcome = sources.download_nppes_bundle(http, tmp_path, listing.latest_monthly)
    primary = Path(outcome.primary_csv)
    assert primary.name.startswith("npidata_pfile_") and not primary.name.endswith("_fileheader.csv")
    with primary.open(newline="") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    assert rows == manifest.counts["nppes.monthly_rows"]
    again = sources.download_nppes_bundle(http, tmp_path, listing.latest_monthly)
    assert again.fetch.bytes_transferred == 0 and again.extraction_reused


def test_changed_index_page_is_still_understood(sandbox_server):
    http = client(sandbox_server)
    plain = sources.nppes_listing(http)
    sandbox_server.inject("changed_index", path="/nppes/NPI_Files.html")
    changed = sources.nppes_listing(http)
    assert [b.name for b in changed.monthly] == [b.name for b in plain.monthly]
    assert [b.name for b in changed.weekly] == [b.name for b in plain.weekly]
    assert changed.latest_monthly.url.startswith("https://download.cms.gov/nppes/")


def test_index_page_without_a_bundle_names_page_and_pattern():
    with pytest.raises(DownloadError, match=r"http://x/nppes/NPI_Files.html.*NPPES_Data_Dissemination_<Month>_<YYYY>_V2.zip"):
        discover.nppes_bundles('<a href="readme.pdf">x</a>', "http://x/nppes/NPI_Files.html")


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_slip_is_refused_and_nothing_is_written(tmp_path):
    bad = _zip(tmp_path / "evil.zip", {"ok.txt": b"fine", "../../escape.txt": b"owned"})
    with pytest.raises(DownloadError, match="zip-slip"):
        archives.extract_zip(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape.txt").exists()
    with pytest.raises(DownloadError, match="zip-slip"):
        archives.check_zip(bad)


def test_corrupt_zip_is_never_half_extracted(tmp_path):
    good = _zip(tmp_path / "a.zip", {"a/one.txt": b"1" * 5000, "a/two.txt": b"2" * 5000})
    archives.extract_zip(good, tmp_path / "out")
    data = bytearray(good.read_bytes())
    start = data.find(b"2" * 10)
    if start < 0:  # stored compressed: damage the middle of the file instead
        start = len(data) // 2
    data[start: start + 20] = b"X" * 20
    good.write_bytes(bytes(data))
    os.utime(good, ns=(1, 1))
    with pytest.raises(DownloadError, match="corrupt zip|Bad CRC|Error -3"):
        archives.extract_zip(good, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "two.txt").read_bytes() == b"2" * 5000  # the finished extraction is intact
    assert not (tmp_path / ".out.partial").exists()


def test_truncated_zip_fails_the_structure_check(tmp_path):
    z = _zip(tmp_path / "t.zip", {"x.txt": os.urandom(20000)})
    z.write_bytes(z.read_bytes()[:-100])
    with pytest.raises(DownloadError, match="not a readable zip"):
        archives.check_zip(z)


def test_cpt_archive_discovery_nested_extraction_overlays_and_fallback(sandbox_server, tmp_path, tiny_sandbox):
    http = client(sandbox_server)
    outcome = sources.download_cpt(http, tmp_path)
    assert outcome.discovered_url.endswith("/files/zip/pfrev26a-updated-01-02-2026.zip")
    prep = outcome.preparation
    assert [name for name, _ in prep.nested.corrupt] == ["archives/PFREV26A/PFREV26AR_LOCALITY.zip"]
    assert prep.overlay_target.endswith("archives/PFREV26A/PFREV26AR_nonQP")
    fallback = tmp_path / "raw" / "cpt" / cpt.FALLBACK_NAME
    got = list(csv.DictReader(fallback.open()))
    expected = list(csv.DictReader((tiny_sandbox / "expected" / "cpt_fallback.csv").open()))
    assert [tuple(r[k] for k in expected[0]) for r in got] == [tuple(r.values()) for r in expected]
    assert prep.fallback_codes == Manifest.read(tiny_sandbox).counts["cpt.fallback_codes"]
    assert list(got[0]) == list(cpt.FALLBACK_COLUMNS)
    # No clutter and no folder name with a trailing space survived.
    root = tmp_path / "raw" / "cpt"
    assert not any(p.name != p.name.rstrip() for p in root.rglob("*"))
    assert not list(root.rglob("__MACOSX"))
    # A second run downloads nothing and yields the same file.
    before = fallback.read_bytes()
    sandbox_server.clear_requests()
    again = sources.download_cpt(http, tmp_path)
    assert again.discovered_url is None and again.archives == []
    assert fallback.read_bytes() == before
    assert sandbox_server.requests() == []


def test_fallback_rules_on_a_generic_file(tmp_path):
    (tmp_path / "codes.txt").write_text(
        "HCPCS_CODE|SHORT_DESC|LONG_DESC|OBSOLETE\n j1100 |Dexamethasone|Injection, dexamethasone|Y\n"
        "99213.0||Office visit|n\nABC|x|y|n\n")
    assert cpt.build_fallback(tmp_path) == 2
    rows = list(csv.reader(io.StringIO((tmp_path / cpt.FALLBACK_NAME).read_text())))
    assert rows[1][:3] == ["99213", "Office visit", "Office visit"] and rows[2][0] == "J1100" and rows[2][6] == "true"
