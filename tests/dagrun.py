"""Running a DAG for real in tests."""

from __future__ import annotations

from typing import Any


def run_dag(dag: Any, **test_kwargs: Any):
    """`dag.test()` with retries off, so a failing task fails the test at once instead of sleeping
    through its retry delays (restored afterwards); returns the DagRun and asserts nothing (tests decide what to expect)."""
    saved = {task.task_id: task.retries for task in dag.tasks}
    for task in dag.tasks:
        task.retries = 0
    try:
        return dag.test(**test_kwargs)
    finally:
        for task in dag.tasks:
            task.retries = saved[task.task_id]


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti.state for ti in dag_run.get_task_instances()}
