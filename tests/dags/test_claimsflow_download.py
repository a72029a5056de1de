"""claimsflow_download run for real (dag.test) against the sandbox server and the test PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

import localenv
import pytest

from claimsflow_airflow.local_run import run_dag, task_states
from include.sandbox.core import MEDICAID_PATH, Manifest


@pytest.fixture
def sandbox_env(sandbox_server, tmp_path, monkeypatch):
    """Connections pointed at the sandbox server, a fresh data root."""
    for key, value in localenv.endpoint_connections(base_url=sandbox_server.url).items():
        monkeypatch.setenv(key, value)
    data = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(data))
    return data


def test_full_download_then_a_rerun_that_transfers_nothing(dagbag, sandbox_env, sandbox_server, tiny_sandbox, pg):
    dag = dagbag.get_dag("claimsflow_download")
    conf = {"sources": ["medicaid", "nppes", "cpt", "nucc"]}
    first = run_dag(dag, run_conf=conf)
    states = task_states(first)
    assert first.state == "success", states
    assert states["hop_teaming"] == "skipped"
    manifest = Manifest.read(tiny_sandbox)
    n_bundles = 1 + manifest.scale["weekly_files"]
    assert sum(1 for k in states if k.startswith("nppes_bundle[")) == n_bundles

    data = sandbox_env
    parquet = data / "raw" / "medicaid" / Path(MEDICAID_PATH).name
    assert parquet.stat().st_size == manifest.files[f"site/{MEDICAID_PATH}"]["bytes"]
    fallback = data / "raw" / "cpt" / "cpt_hcpcs_fallback.csv"
    assert sum(1 for _ in csv.reader(fallback.open())) - 1 == manifest.counts["cpt.fallback_codes"]
    monthly = list((data / "raw" / "nppes" / "monthly").glob("*/npidata_pfile_*[0-9].csv"))
    assert len(monthly) == 1 and len(list((data / "raw" / "nppes" / "weekly").glob("*.zip"))) == manifest.scale["weekly_files"]

    rows = pg.execute(
        "SELECT dataset, status, bytes_transferred FROM claimsflow_meta.download_manifest WHERE run_id = %s",
        (first.run_id,)).fetchall()
    datasets = {r[0] for r in rows}
    assert {"medicaid_spending", "nppes_monthly", "nppes_weekly", "cpt", "nucc"} <= datasets
    assert ("cpt", "corrupt", None) in rows  # the sandbox's damaged nested zip, reported not fatal

    sandbox_server.clear_requests()
    second = run_dag(dag, run_conf=conf)
    assert second.state == "success", task_states(second)
    transferred = pg.execute(
        "SELECT coalesce(sum(bytes_transferred), 0) FROM claimsflow_meta.download_manifest WHERE run_id = %s",
        (second.run_id,)).fetchone()[0]
    assert transferred == 0
    assert all(r.bytes_sent == 0 for r in sandbox_server.requests() if not r.path.endswith((".html", "pfrev26a")))


def test_nppes_run_emits_the_asset_with_the_bundle_month(dagbag, sandbox_env):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    dag = dagbag.get_dag("claimsflow_download")
    run = run_dag(dag, run_conf={"sources": ["nppes"]})
    assert run.state == "success", task_states(run)
    with create_session() as session:
        event = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                 .filter(AssetModel.name == "raw_nppes", AssetEvent.source_run_id == run.run_id).one())
        assert event.extra["version"] == "2026-11"
        assert len(event.extra["weekly"]) >= 1


def test_missing_index_link_fails_the_run_and_records_it(dagbag, sandbox_env, sandbox_copy, monkeypatch, pg):
    from include.sandbox.server import SandboxServer

    index = sandbox_copy / "site" / "nppes" / "NPI_Files.html"
    index.write_text("<html><body><a href='readme.pdf'>readme</a></body></html>")
    with SandboxServer(sandbox_copy) as server:
        for key, value in localenv.endpoint_connections(base_url=server.url).items():
            monkeypatch.setenv(key, value)
        run = run_dag(dagbag.get_dag("claimsflow_download"), run_conf={"sources": ["nppes"]})
    assert run.state == "failed"
    assert task_states(run)["discover_nppes"] == "failed"
    error = pg.execute("SELECT error_message FROM claimsflow_meta.download_manifest WHERE run_id = %s AND status = 'failed'",
                       (run.run_id,)).fetchone()[0]
    assert "NPI_Files.html" in error and "NPPES_Data_Dissemination_<Month>_<YYYY>_V2.zip" in error


def test_hop_teaming_from_a_folder_and_from_a_url(dagbag, sandbox_env, tiny_sandbox, tmp_path, pg):
    import shutil

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from include.sandbox.server import SandboxServer

    dag = dagbag.get_dag("claimsflow_download")
    folder = tiny_sandbox / "restricted" / "hop_teaming"
    years = Manifest.read(tiny_sandbox).scale["hop_years"]
    run = run_dag(dag, run_conf={"sources": ["hop_teaming"], "hop_teaming_location": str(folder)})
    assert run.state == "success", task_states(run)
    raw = sandbox_env / "raw" / "hop_teaming"
    assert sorted(p.name for p in raw.glob("*.zip")) == [f"DocGraph_Hop_Teaming_{y}.zip" for y in years]
    for y in years:
        assert (raw / f"DocGraph_Hop_Teaming_{y}.zip").read_bytes() == (folder / f"DocGraph_Hop_Teaming_{y}.zip").read_bytes()
    with create_session() as session:
        event = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                 .filter(AssetModel.name == "raw_hop_teaming", AssetEvent.source_run_id == run.run_id).one())
        assert event.extra["years"] == years

    # The same files behind a URL (a licensed mirror): fetched, verified, then found complete on a rerun.
    (sandbox_env / "raw" / "hop_teaming").rename(tmp_path / "copied")
    mirror = tmp_path / "mirror"
    shutil.copytree(folder, mirror / "site" / "docgraph")  # the server refuses symlinks out of its tree
    (mirror / "manifest.json").write_bytes((tiny_sandbox / "manifest.json").read_bytes())
    with SandboxServer(mirror) as server:
        conf = {"sources": ["hop_teaming"], "hop_teaming_location": f"{server.url}/docgraph", "hop_teaming_years": years}
        first = run_dag(dag, run_conf=conf)
        assert first.state == "success", task_states(first)
        server.clear_requests()
        second = run_dag(dag, run_conf=conf)
        assert second.state == "success", task_states(second)
        assert all(r.bytes_sent == 0 for r in server.requests())
    rows = pg.execute("SELECT run_id, status, version FROM claimsflow_meta.download_manifest "
                      "WHERE dataset = 'hop_teaming' AND run_id IN (%s, %s) ORDER BY run_id, version",
                      (first.run_id, second.run_id)).fetchall()
    assert sorted(r[1] for r in rows if r[0] == first.run_id) == ["downloaded"] * len(years)
    assert {r[1] for r in rows if r[0] == second.run_id} <= {"unchanged", "reused"}


def test_hop_teaming_corrupt_zip_is_refused_and_nothing_copied(dagbag, sandbox_env, tiny_sandbox, tmp_path, pg):
    import shutil

    folder = tmp_path / "licensed"
    shutil.copytree(tiny_sandbox / "restricted" / "hop_teaming", folder)
    year = Manifest.read(tiny_sandbox).scale["hop_years"][-1]
    damaged = folder / f"DocGraph_Hop_Teaming_{year}.zip"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    run = run_dag(dagbag.get_dag("claimsflow_download"),
                  run_conf={"sources": ["hop_teaming"], "hop_teaming_location": str(folder)})
    assert run.state == "failed"
    assert not (sandbox_env / "raw" / "hop_teaming" / damaged.name).exists()
    error = pg.execute("SELECT error_message FROM claimsflow_meta.download_manifest "
                       "WHERE run_id = %s AND dataset = 'hop_teaming' AND status = 'failed'", (run.run_id,)).fetchone()[0]
    assert damaged.name in error
