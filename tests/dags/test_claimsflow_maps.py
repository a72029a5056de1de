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
