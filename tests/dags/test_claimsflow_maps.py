"""claimsflow_maps run for real (dag.test) on the sandbox: downloads first, then the maps, with the
request discipline read from the sandbox server's request log."""

from __future__ import annotations

import csv
import json
import math
import os

import localenv
import pyarrow.parquet as pq
import pytest

from claimsflow_airflow.local_run import run_dag, task_states
from include.maps import outputs
from include.sandbox.core import Manifest

FAST = {"requests_per_second": 50.0, "concurrency": 2, "hcpcs_batch_size": 20}


@pytest.fixture
def downloaded(dagbag, sandbox_server, tmp_path, monkeypatch, pg):
    """The sandbox downloaded into a fresh data root; fresh map caches."""
    for key, value in localenv.endpoint_connections(base_url=sandbox_server.url).items():
        monkeypatch.setenv(key, value)
    # the API connections retry fast in tests
    for conn_id in ("AIRFLOW_CONN_NPI_REGISTRY", "AIRFLOW_CONN_CLINICAL_TABLES"):
        conn = json.loads(os.environ[conn_id])
        conn["extra"] = {**conn.get("extra", {}), "retries": 3, "backoff": 0.01}
        monkeypatch.setenv(conn_id, json.dumps(conn))
    data = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(data))
    run = run_dag(dagbag.get_dag("claimsflow_download"), run_conf={"sources": ["medicaid", "nppes", "cpt", "nucc"]})
    assert run.state == "success", task_states(run)
    pg.execute("CREATE SCHEMA IF NOT EXISTS maps")
    pg.execute("DROP TABLE IF EXISTS maps.npi_cache, maps.hcpcs_cache, maps.npi_wanted, maps.hcpcs_wanted, "
               "maps.npi, maps.hcpcs")
    pg.commit()
    sandbox_server.clear_requests()
    return data


def test_full_run_resolves_everything_with_request_discipline(dagbag, downloaded, sandbox_server, tiny_sandbox, pg):
    m = Manifest.read(tiny_sandbox)
    c = m.counts
    dag = dagbag.get_dag("claimsflow_maps")
    run = run_dag(dag, run_conf=FAST)
    states = task_states(run)
    assert run.state == "success", states
    assert sum(1 for t in states if t.startswith("npi_api[")) == 2

    # NPI: bulk (monthly + weeklies) first, the API only for what is left
    npi_requests = sandbox_server.requests("/api/")
    npi_requests = [r for r in npi_requests if not r.path.startswith("/api/hcpcs")]
    assert len(npi_requests) == c["spending.category.api_only"] + c["spending.category.nowhere"]
    rows = dict(pg.execute("SELECT status, count(*) FROM maps.npi GROUP BY 1").fetchall())
    found = sum(c[f"spending.category.{k}"] for k in ("bulk", "weekly_update", "weekly_new", "deactivated", "api_only"))
    invalid = c["spending.invalid_npis"] + m.defects["medicaid.garbage_npi"]["count"]
    assert rows == {"found": found, "not_found": c["spending.category.nowhere"], "invalid": invalid}
    sources = dict(pg.execute("SELECT source, count(*) FROM maps.npi WHERE status = 'found' GROUP BY 1").fetchall())
    assert sources == {"bulk": found - c["spending.category.api_only"], "api": c["spending.category.api_only"]}

    # HCPCS: fallback first, then batched OR queries
    hcpcs_rows = dict(pg.execute("SELECT status, count(*) FROM maps.hcpcs GROUP BY 1").fetchall())
    known = c["spending.hcpcs_source.api"] + c["spending.hcpcs_source.fallback_cpt"] + c["spending.hcpcs_source.fallback_l2"]
    assert hcpcs_rows["found"] == known
    assert hcpcs_rows.get("not_found", 0) + hcpcs_rows.get("invalid", 0) == c["spending.hcpcs_source.unknown"]
    hcpcs_requests = sandbox_server.requests("/api/hcpcs/v3/search")
    asked = pg.execute("SELECT count(*) FROM maps.hcpcs_cache WHERE source = 'api' OR "
                       "(source = 'fallback' AND url IS NOT NULL)").fetchone()[0]
    assert len(hcpcs_requests) <= 2 * math.ceil(asked / 2 / FAST["hcpcs_batch_size"]) + 2
    assert all(r.status == 200 for r in sandbox_server.requests())
    pg.rollback()  # end the read transaction: the next runs replace maps.npi / maps.hcpcs

    # outputs: the seed's column order, one row per identifier
    data = downloaded
    paths = outputs.OutputPaths(data)
    npi_table = pq.read_table(paths.npi_parquet)
    assert npi_table.column_names == ["npi", "basic", "addresses", "practice_locations", "taxonomies", "identifiers",
                                      "other_names", "endpoints", "url", "error_message", "api_run_id",
                                      "requested_at_utc", "request_params", "results", "response_json"]
    assert npi_table.num_rows == c["spending.distinct_npis"]
    hcpcs_table = pq.read_table(paths.hcpcs_parquet)
    assert hcpcs_table.column_names == ["hcpcs_code", "ef_short_desc", "ef_long_desc", "ef_add_dt", "ef_act_eff_dt",
                                        "ef_term_dt", "ef_obsolete", "ef_is_noc", "response_codes", "response_display",
                                        "response_extra_fields", "url", "error_message", "api_run_id",
                                        "requested_at_utc", "request_params", "response_json"]
    assert hcpcs_table.num_rows == c["spending.distinct_hcpcs"]
    with paths.unresolved.open() as f:
        unresolved = list(csv.DictReader(f))
    assert {r["status"] for r in unresolved} <= {"not_found", "invalid", "error", "missing_cache"}
    assert sum(1 for r in unresolved if r["type"] == "npi") == c["spending.category.nowhere"] + invalid
    with paths.npi_mapping.open() as f:
        mapping = list(csv.DictReader(f))
    assert len(mapping) == c["spending.distinct_npis"] and mapping[0]["npi"]

    # a second run finds everything done: nothing is asked, nothing rewritten
    sandbox_server.clear_requests()
    again = run_dag(dag, run_conf=FAST)
    assert again.state == "success", task_states(again)
    assert task_states(again)["export"] == "skipped"
    assert sandbox_server.requests("/api/") == []

    # rebuild_map: outputs rebuilt from the caches, still no request
    before = paths.npi_parquet.stat().st_mtime_ns
    rebuilt = run_dag(dag, run_conf={**FAST, "rebuild_map": True})
    assert rebuilt.state == "success", task_states(rebuilt)
    assert paths.npi_parquet.stat().st_mtime_ns > before
    assert sandbox_server.requests("/api/") == []
    assert pq.read_table(paths.npi_parquet).equals(npi_table), "the same caches give the same outputs"


def test_faults_during_a_run_end_resolved(dagbag, downloaded, sandbox_server, tiny_sandbox, pg, monkeypatch):
    c = Manifest.read(tiny_sandbox).counts
    for conn_id in ("AIRFLOW_CONN_NPI_REGISTRY", "AIRFLOW_CONN_CLINICAL_TABLES"):
        conn = json.loads(os.environ[conn_id])
        conn["extra"] = {**conn["extra"], "retries": 6, "timeout": 1, "connect_timeout": 1}
        monkeypatch.setenv(conn_id, json.dumps(conn))
    # /api/ also prefixes the HCPCS path: whichever API meets them, every fault is absorbed by retries
    sandbox_server.inject("429", path="/api/", count=2, retry_after=0)  # a burst, Retry-After honoured
    sandbox_server.inject("5xx", path="/api/", count=2)
    sandbox_server.inject("malformed_json", path="/api/", count=1)
    sandbox_server.inject("timeout", path="/api/", count=1, delay=1.5)  # longer than the 1 s read timeout
    run = run_dag(dagbag.get_dag("claimsflow_maps"), run_conf=FAST)
    assert run.state == "success", task_states(run)
    statuses = [r.status for r in sandbox_server.requests("/api/")]
    assert statuses.count(429) == 2 and sum(1 for s in statuses if s >= 500) == 2
    assert sum(1 for r in sandbox_server.requests("/api/") if r.fault) == 6
    rows = dict(pg.execute("SELECT status, count(*) FROM maps.npi GROUP BY 1").fetchall())
    assert rows["not_found"] == c["spending.category.nowhere"] and "error" not in rows
    assert pg.execute("SELECT count(*) FROM maps.hcpcs WHERE status = 'error'").fetchone()[0] == 0
    pg.rollback()
    with outputs.OutputPaths(downloaded).unresolved.open() as f:
        assert not any(r["status"] == "error" for r in csv.DictReader(f))


def test_a_killed_worker_loses_nothing_and_the_rerun_ends_the_same(dagbag, downloaded, sandbox_server, tiny_sandbox,
                                                                    pg, db_conninfo, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    c = Manifest.read(tiny_sandbox).counts
    dag = dagbag.get_dag("claimsflow_maps")
    # 1. bulk only (no API), so the NPIs left for the API are known
    first = run_dag(dag, run_conf={**FAST, "skip_api": True})
    assert first.state == "success", task_states(first)
    left = pg.execute("SELECT count(*) FROM maps.npi_wanted w WHERE w.luhn_valid AND NOT EXISTS "
                      "(SELECT 1 FROM maps.npi_cache k WHERE k.npi = w.npi AND k.status <> 'error')").fetchone()[0]
    pg.rollback()
    assert left == c["spending.category.api_only"] + c["spending.category.nowhere"]

    # 2. a worker resolving them at 4 requests/s is killed with SIGKILL mid-way
    script = tmp_path / "worker.py"
    script.write_text(
        "import sys, psycopg\n"
        "from include.http.client import HttpClient\n"
        "from include.maps import cache, npi_api\n"
        "conn = psycopg.connect(sys.argv[1])\n"
        "client = HttpClient(sys.argv[2], rate_limit=4)\n"
        "todo = [n for n in cache.pending(conn, 'npi') if npi_api.is_valid_npi(n)]\n"
        "npi_api.resolve(conn, client, todo, api_run_id='killed', commit_every=2)\n")
    sandbox_server.clear_requests()
    worker = subprocess.Popen([sys.executable, str(script), db_conninfo, sandbox_server.url],
                              cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    deadline = time.monotonic() + 30
    while len(sandbox_server.requests("/api/")) < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    asked_before = {r.query for r in sandbox_server.requests("/api/")}
    cached = pg.execute("SELECT count(*) FROM maps.npi_cache WHERE api_run_id = 'killed'").fetchone()[0]
    pg.rollback()
    assert 0 < cached < left, "some answers were stored before the kill"

    # 3. the rerun asks only for what was not stored
    sandbox_server.clear_requests()
    rerun = run_dag(dag, run_conf=FAST)
    assert rerun.state == "success", task_states(rerun)
    asked_again = [r.query for r in sandbox_server.requests("/api/") if not r.path.startswith("/api/hcpcs")]
    assert len(asked_again) == left - cached
    stored_by_killed = {r[0] for r in pg.execute("SELECT npi FROM maps.npi_cache WHERE api_run_id = 'killed'")}
    assert not any(f"number={n}" in q for q in asked_again for n in stored_by_killed)
    assert len(asked_before) >= cached
    resumed = pg.execute("SELECT npi, status, source, provider_name, primary_taxonomy_code FROM maps.npi "
                         "ORDER BY npi").fetchall()
    pg.rollback()

    # 4. the same outputs as an uninterrupted run from scratch
    fresh = run_dag(dag, run_conf={**FAST, "reset_map": True})
    assert fresh.state == "success", task_states(fresh)
    assert pg.execute("SELECT npi, status, source, provider_name, primary_taxonomy_code FROM maps.npi "
                      "ORDER BY npi").fetchall() == resumed
    pg.rollback()
