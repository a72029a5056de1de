"""Running a DAG in-process with dag.test(): the demo and the tests use this, never the scheduler."""

from __future__ import annotations

from typing import Any


def run_dag(dag: Any, **test_kwargs: Any):
    """`dag.test()` with retries off, so a failing task fails at once instead of sleeping through its
    retry delays (restored afterwards); returns the DagRun, whose state the caller checks.

    In-process runs fold `run_conf` into the DAG's and the tasks' params objects; both are restored
    afterwards so that the next run of the same DAG object starts from the defaults, as a new run in the
    scheduler would."""
    import copy

    saved = {task.task_id: task.retries for task in dag.tasks}
    saved_params = copy.deepcopy(dag.params)
    saved_task_params = {task.task_id: copy.deepcopy(task.params) for task in dag.tasks}
    for task in dag.tasks:
        task.retries = 0
    try:
        return dag.test(**test_kwargs)
    finally:
        for task in dag.tasks:
            task.retries = saved[task.task_id]
            task.params = saved_task_params[task.task_id]
        dag.params = saved_params


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti.state for ti in dag_run.get_task_instances()}


def load_dag(dag_id: str, dags_folder: str | None = None) -> Any:
    """A DAG from the bundle's folder (the configured dags folder by default)."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    folder = dags_folder or os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        raise RuntimeError(f"DAG files failed to import: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {folder}")
    return dag
