"""
### claimsflow_medicare_processing — the raw Medicare tables into the Medicare data model, with QC

Runs after any year is ingested (Asset `medicare_raw`) and from the UI. Every object is rebuilt from
all raw tables on each run, in build schemas that `publish` swaps in in one transaction: readers see
the previous complete model until then, and a failed run leaves it untouched.

1. `prepare` — build schemas, helper functions, reference tables: US states (shipped), SSA→FIPS and
   ZIP→county crosswalks from `crosswalk_folder` (default `<data root>/restricted/medicare_crosswalks`);
2. `ps` — view `medicare.ps` over every beneficiary summary table (`mbsf_ab*`, `mbsf_abcd*`,
   `mcr_bene_*`), conditioned (years, dates, states, ZIPs, monthly indicators);
3. `ps_fips` — `medicare._ps` with `fips3` (from the SSA county, else the ZIP) and
   `medicare_audit.enrollments` (records failing validation, with the reason);
4. `beneficiaries`, 5. `enrollments` — the seed's tables, with their discrepancy columns and HLL hashes;
6. `ip` — view `medicare.ip` over every inpatient table (`medpar*`, `mcr_ip_*`);
7. `admissions` — `medicare.admissions` + `medicare_audit.admissions` (PRIMARY KEY / FOREIGN KEY /
   DUPLICATE): every input record lands in exactly one of the two;
8. `qc` — `medicare_qc.qc_enrollments`, `qc_admissions` (materialized views) and the metric views;
9. `publish` — the swap, and the `medicare_model` asset event with row counts per year;
10. `qc_report` — an HTML report under `report_folder` (default `<data root>/output/qc`), linked in the
    task log; `grant` — SELECT on every schema of the model to `read_only_role`.
"""

from __future__ import annotations

from airflow.sdk import Param, chain, dag, task

from claimsflow_airflow import assets, medicare_processing_tasks
from claimsflow_airflow.defaults import DEFAULT_ARGS, START_DATE
from claimsflow_airflow.operators.medicare_processing_operators import MedicareProcessingStepOperator


@dag(
    dag_id="claimsflow_medicare_processing",
    schedule=assets.MEDICARE_RAW,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # one set of build schemas
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "medicare"],
    doc_md=__doc__,
    params={
        "crosswalk_folder": Param("", type="string", title="Crosswalk folder",
                                  description="SSA→FIPS and ZIP→county CSVs; empty: <data root>/restricted/medicare_crosswalks."),
        "report_folder": Param("", type="string", title="QC report folder",
                               description="Where the HTML QC report goes; empty: <data root>/output/qc."),
        "read_only_role": Param("claimsflow_reader", type="string", title="Read-only role",
                                description="Granted SELECT on the model; empty: no grants."),
    },
)
def claimsflow_medicare_processing():
    @task
    def crosswalks(**context) -> str:
        return medicare_processing_tasks.crosswalk_folder(context)

    steps = [MedicareProcessingStepOperator(step="prepare", crosswalk_folder=crosswalks(), pool="claimsflow_db")]
    steps += [MedicareProcessingStepOperator(step=s, pool="claimsflow_db")
              for s in ("ps", "ps_fips", "beneficiaries", "enrollments", "ip", "admissions", "qc", "publish")]

    @task(outlets=[assets.MEDICARE_MODEL])
    def announce(**context) -> dict:
        return medicare_processing_tasks.published(context)

    @task
    def qc_report(**context) -> str:
        return medicare_processing_tasks.qc_report(context)

    @task
    def grant(**context) -> list[str]:
        return medicare_processing_tasks.grant_select(context)

    chain(*steps, announce(), [qc_report(), grant()])


claimsflow_medicare_processing()
