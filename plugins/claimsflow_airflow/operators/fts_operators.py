"""(Not named medicare.py: Airflow imports every plugins/ file under its bare stem.)

Operators of the Medicare ingestion: small adapters over include/fts_parsers and include/medicare.

- `FtsParseOperator` parses one File Transfer Summary, validates it and stores the layout in
  `claimsflow_meta.medicare_layouts` (parsed once, visible in the database); returns the file set.
- `MedicareFwfLoadOperator` loads the data files of one FTS with the stored layout into
  `medicare_raw.<table>` (skipped when the same files are already loaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.bases.operator import BaseOperator

from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from claimsflow_airflow.settings import run_info
from include.fts_parsers.fts import FtsFile, parse_fts
from include.medicare import ingest


def fts_file_ref(f: FtsFile) -> dict[str, Any]:
    return {"fts": str(f.fts), "data": [str(p) for p in f.data], "year": f.year, "table": f.table}


def fts_file_from_ref(ref: dict[str, Any]) -> FtsFile:
    return FtsFile(fts=Path(ref["fts"]), data=tuple(Path(p) for p in ref["data"]), year=int(ref["year"]))


class _FtsFileOperator(BaseOperator):
    """Works on one FTS file set (`fts_file_ref` form, usually mapped from XCom) in claimsflow_db."""

    template_fields: Sequence[str] = ("fts_file",)

    def __init__(self, *, fts_file: dict[str, Any] | str, postgres_conn_id: str = "claimsflow_db", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fts_file = fts_file
        self.postgres_conn_id = postgres_conn_id


class FtsParseOperator(_FtsFileOperator):
    """Parse and validate one FTS; store its layout; return the file set for the loader."""

    ui_color = "#e8f1e4"

    def execute(self, context: Any) -> dict[str, Any]:
        f = fts_file_from_ref(self.fts_file)
        layout = parse_fts(f.fts)
        if layout.misaligned_lines:
            self.log.warning("%s: %d misaligned column rows read by tokens (lines %s)", f.fts.name,
                             len(layout.misaligned_lines), ", ".join(map(str, layout.misaligned_lines[:10])))
        with ClaimsflowPostgresHook(postgres_conn_id=self.postgres_conn_id).pg_connection() as conn:
            ingest.ensure_schema(conn)
            ingest.store_layout(conn, f, layout)
        self.log.info("%s: %d columns, record length %d, %s records stated; table medicare_raw.%s", f.fts.name,
                      len(layout.columns), layout.record_length, layout.record_count, f.table)
        return {**fts_file_ref(f), "record_length": layout.record_length, "columns": len(layout.columns)}


class MedicareFwfLoadOperator(_FtsFileOperator):
    """Load the fixed-width data files of one parsed FTS with its stored layout."""

    ui_color = "#dbe9f6"

    def execute(self, context: Any) -> dict[str, Any]:
        f = fts_file_from_ref(self.fts_file)
        with ClaimsflowPostgresHook(postgres_conn_id=self.postgres_conn_id).pg_connection() as conn:
            layout = ingest.stored_layout(conn, f.table)
            if layout is None:
                raise RuntimeError(f"no stored layout for {f.table}: parse {f.fts.name} first (FtsParseOperator)")
            result = ingest.load_fwf(conn, f, layout, run=run_info(context))
        return result.as_dict()
