"""Deployment settings read the Airflow way (Variables, task context), handed to the domain code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from include.common import paths
from include.meta.manifest import RunInfo

DATA_DIR_VARIABLE = "claimsflow_data_dir"


def data_root() -> Path:
    """The data root: Airflow Variable `claimsflow_data_dir`, else $CLAIMSFLOW_DATA_DIR, else ./data.

    Call inside a task only: reading a Variable while a DAG file is parsed costs a round trip per parse.
    """
    from airflow.sdk import Variable

    return paths.data_root(Variable.get(DATA_DIR_VARIABLE, default=None))


def run_info(context: Any) -> RunInfo:
    """Which DAG run and task are doing the work, for the manifest."""
    ti = context["ti"]
    return RunInfo(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
