"""The operator of `claimsflow_medicare_processing`: one step of the in-database pipeline, a small
adapter over include/medicare/processing.py (which runs the step's SQL file from include/sql/medicare/)
through the providers' PostgresHook on `claimsflow_db`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.bases.operator import BaseOperator

from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from include.medicare import processing


class MedicareProcessingStepOperator(BaseOperator):
    """Run one processing step (`processing.STEPS`) in its own transaction; returns its figures."""

    template_fields: Sequence[str] = ("crosswalk_folder",)
    ui_color = "#f3e6d8"

    def __init__(self, *, step: str, crosswalk_folder: str | None = None, postgres_conn_id: str = "claimsflow_db",
                 **kwargs: Any) -> None:
        if step not in processing.STEPS:
            raise ValueError(f"unknown step {step!r}; steps: {', '.join(processing.STEPS)}")
        kwargs.setdefault("task_id", step)
        super().__init__(**kwargs)
        self.step = step
        self.crosswalk_folder = crosswalk_folder
        self.postgres_conn_id = postgres_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        folder = Path(self.crosswalk_folder) if self.crosswalk_folder else None
        with ClaimsflowPostgresHook(postgres_conn_id=self.postgres_conn_id).pg_connection() as conn:
            return processing.run_step(conn, self.step, crosswalk_folder=folder)
