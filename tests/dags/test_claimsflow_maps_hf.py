"""claimsflow_maps' opt-in Hugging Face upload: the task, its place after the export, its params (all off
by default), the skip when off, and the task function reading token and endpoint from connection
`huggingface` (a fake Hub on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from tests.dags import test_claimsflow_maps as maps_tests
from tests.include.maps.fake_hf_hub import FakeHfHub

downloaded = maps_tests.downloaded  # the sandbox downloaded into a fresh data root, fresh map caches

HF_DEFAULTS = {
    "hf_repo_id": "",
    "hf_upload_npi": False,
    "hf_upload_hcpcs": False,
    "hf_upload_mapping": False,
    "hf_upload_hcpcs_mapping": False,
    "hf_npi_path_in_repo": "npi/npi.parquet",
    "hf_hcpcs_path_in_repo": "hcpcs/hcpcs.parquet",
    "hf_use_xet": False,
}
TOKEN = "hf_claimsflowDAGtoken0123456789abcdef"


@pytest.fixture
def dag(dagbag):
    return dagbag.get_dag("claimsflow_maps")


def run_task(dag, **params):
    """The upload task's own function (what the worker calls), with the DAG's defaults under `params`."""
    return dag.get_task("hf_upload").python_callable(params={**dag.params.dump(), **params})


def test_the_upload_task_runs_after_the_export_even_when_it_skipped(dag):
    task = dag.get_task("hf_upload")
    assert task.upstream_task_ids == {"export"}
    assert task.trigger_rule == "none_failed"
    assert task.downstream_task_ids == set()


def test_the_upload_params_are_off_by_default(dag):
    params = dag.params.dump()
    assert {k: params[k] for k in HF_DEFAULTS} == HF_DEFAULTS
    dag.params.validate()


def test_a_bad_repo_id_is_refused_when_the_run_is_created(dag):
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    params["hf_repo_id"] = "me/maps"
    with pytest.raises(ParamValidationError, match="hf_repo_id"):
        params["hf_repo_id"] = "not a repo"


def test_with_the_params_off_the_task_skips(dag):
    with pytest.raises(AirflowSkipException, match="hf_repo_id is empty"):
        run_task(dag)
    with pytest.raises(AirflowSkipException, match=r"hf_repo_id is empty, nothing is uploaded \(ignoring hf_upload_npi"):
        run_task(dag, hf_upload_npi=True)
    with pytest.raises(AirflowSkipException, match="no hf_upload_\\* flag is set"):
        run_task(dag, hf_repo_id="me/maps")


def test_the_task_uploads_with_the_connections_token_and_endpoint(dag, tmp_path, monkeypatch, caplog):
    from include.maps.outputs import OutputPaths

    data = tmp_path / "data"
    paths = OutputPaths(data)
    paths.npi_mapping.parent.mkdir(parents=True)
    paths.npi_mapping.write_text("npi,status\n1234567893,found\n", encoding="utf-8")
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(data))
    caplog.set_level("DEBUG")
    with FakeHfHub(tokens={TOKEN: "write"}) as hub:
        monkeypatch.setenv("AIRFLOW_CONN_HUGGINGFACE", json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": int(hub.url.rsplit(":", 1)[1]), "schema": "http",
             "password": TOKEN}))
        results = run_task(dag, hf_repo_id="me/maps", hf_upload_mapping=True)
        [commit] = hub.commits
        assert commit.repo_id == "me/maps"
        assert commit.files["mappings/npi/npi_provider_mapping.csv"] == paths.npi_mapping.read_bytes()
        assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in hub.requests)
    assert [r["status"] for r in results] == ["uploaded", "uploaded"]
    assert TOKEN not in json.dumps(results), "the return value goes to XCom"
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value, use_xet", [(False, False), (True, True), (None, False)])
def test_hf_use_xet_reaches_the_upload(dag, tmp_path, monkeypatch, value, use_xet):
    from include.maps import hf_upload

    calls = []
    monkeypatch.setattr(hf_upload, "upload_outputs", lambda paths, **kwargs: calls.append(kwargs) or [])
    monkeypatch.setenv("AIRFLOW_CONN_HUGGINGFACE", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "schema": "http", "password": TOKEN}))
    run_task(dag, hf_repo_id="me/maps", hf_upload_npi=True, hf_use_xet=value)
    [kwargs] = calls
    assert kwargs["use_xet"] is use_xet and kwargs["upload_npi"] is True


def test_a_full_run_uploads_and_a_rerun_commits_nothing(dagbag, downloaded, monkeypatch, caplog):
    """The whole DAG on the sandbox with every flag on; the second run (export skipped) finds the Hub current.
    The parquets are LFS files, as on the real Hub: they take the LFS batch API (hf_use_xet off)."""
    from claimsflow_airflow.local_run import run_dag, task_states
    from include.maps.outputs import OutputPaths

    dag = dagbag.get_dag("claimsflow_maps")
    conf = {**maps_tests.FAST, "hf_repo_id": "me/medicaid-maps", "hf_upload_npi": True, "hf_upload_hcpcs": True,
            "hf_upload_mapping": True, "hf_upload_hcpcs_mapping": True, "hf_npi_path_in_repo": "data/npi.parquet"}
    caplog.set_level("INFO")
    with FakeHfHub(tokens={TOKEN: "write"}, lfs_patterns=("*.parquet",)) as hub:
        monkeypatch.setenv("AIRFLOW_CONN_HUGGINGFACE", json.dumps(
            {"conn_type": "http", "host": hub.url, "password": TOKEN}))  # host may be a full base URL
        run = run_dag(dag, run_conf=conf)
        assert run.state == "success", task_states(run)
        assert task_states(run)["hf_upload"] == "success"
        [commit] = hub.commits
        paths = OutputPaths(downloaded)
        assert commit.files["data/npi.parquet"] == paths.npi_parquet.read_bytes()
        assert commit.files["hcpcs/hcpcs.parquet"] == paths.hcpcs_parquet.read_bytes()
        assert commit.files["mappings/npi/npi_provider_mapping.csv"] == paths.npi_mapping.read_bytes()
        assert commit.files["mappings/hcpcs/hcpcs_code_mapping.csv"] == paths.hcpcs_mapping.read_bytes()
        assert "config_name: npi_mapping" in commit.files["README.md"].decode()
        assert sorted(commit.lfs_paths) == ["data/npi.parquet", "hcpcs/hcpcs.parquet"]
        assert "lfs_batch" in hub.routes() and "xet_write_token" not in hub.routes()

        again = run_dag(dag, run_conf=conf)
        states = task_states(again)
        assert again.state == "success", states
        assert states["export"] == "skipped" and states["hf_upload"] == "success"
        assert len(hub.commits) == 1, "unchanged outputs: no second commit"
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
