"""The health-check DAG, run for real with dag.test() against the test PostgreSQL."""

from __future__ import annotations

import copy
import json
import os

from claimsflow_airflow.local_run import run_dag, task_states


def test_healthcheck_dag_writes_to_postgres_through_the_connection(dagbag, pg, capfd):
    dag = dagbag.get_dag("claimsflow_healthcheck")
    dr = run_dag(dag, run_conf={"rows": 5_000})
    assert dr.state == "success", task_states(dr)

    row = pg.execute(
        "SELECT copy_rows, hll_estimate, hll_version, data_root FROM claimsflow_meta.healthcheck WHERE run_id = %s",
        (dr.run_id,),
    ).fetchone()
    assert row is not None, "the DAG run recorded no health-check row"
    copy_rows, estimate, hll_version, data_root = row
    assert copy_rows == 5_000
    assert abs(estimate - 5_000) <= 250
    assert hll_version
    assert data_root == os.path.realpath(os.environ["CLAIMSFLOW_DATA_DIR"])

    # The task log says what was checked, and never shows the database password.
    output = capfd.readouterr()
    logs = output.out + output.err
    assert "hll estimate" in logs
    password = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])["password"]
    assert password not in logs


def test_healthcheck_task_runs_in_the_database_pool(dagbag):
    task = dagbag.get_dag("claimsflow_healthcheck").get_task("check_platform")
    assert task.pool == "claimsflow_db"


def test_invalid_params_are_refused(dagbag):
    import pytest
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.get_dag("claimsflow_healthcheck")
    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError):
        params["rows"] = 5  # below the form's minimum
        params.validate()
