"""
### claimsflow_medicare_ingest — ResDAC Medicare files into `medicare_raw`, one table per file, year by year

Users place the restricted files in a folder (param `input_folder`, default
`<data root>/restricted/medicare`), one sub-folder per year: 2011 and later hold File Transfer Summary
`.fts` files with their fixed-width `.dat` file(s); 1999-2010 hold `denominator/` and `inpatient/`
SAS7BDAT files (the year boundary is the `fwf_from_year` param).

For the run's year (the `year` param, else the year of the logical date: the DAG is scheduled yearly
from 1999, so `airflow backfill create --dag-id claimsflow_medicare_ingest --from-date 1999-01-01
--to-date 2018-12-31` runs each year on its own):

1. `discover` lists the FTS files of the year (none: the run skips cleanly and says so);
2. `parse_fts` (FtsParseOperator, mapped) parses and validates each FTS and stores its layout in
   `claimsflow_meta.medicare_layouts`;
3. `load` (MedicareFwfLoadOperator, mapped) streams the data into `medicare_raw.<file type>_<year>`
   with COPY: `source_file` + `record_number` on every row, uniform `bene_id`/`state`/`zip`/`year`,
   refused records in `medicare_raw.ingest_rejects`, indexes after the load, the table replaced
   atomically; files already loaded unchanged are skipped;
   For SAS years instead: `discover_sas` → `load_sas` (mapped) reads each SAS7BDAT in chunks with its
   own metadata and encoding into `medicare_raw.mcr_bene_<year>` / `mcr_ip_<year>`, same columns rules;
4. `publish` emits the `medicare_raw` asset, and `medicare_raw_<year>` (through the alias
   `medicare_raw_years`), with the year and tables.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from claimsflow_airflow import assets, medicare_tasks
from claimsflow_airflow.defaults import DEFAULT_ARGS
from claimsflow_airflow.operators.fts_operators import FtsParseOperator, MedicareFwfLoadOperator


@dag(
    dag_id="claimsflow_medicare_ingest",
    schedule="@yearly",
    start_date=pendulum.datetime(1999, 1, 1, tz="UTC"),
    catchup=False,  # years are ingested on demand: a manual run, or a backfill over a range of years
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "medicare"],
    doc_md=__doc__,
    params={
        "year": Param(None, type=["null", "integer"], minimum=1999, maximum=2100, title="Year",
                      description="Empty: the year of the run's logical date (scheduled and backfill runs)."),
        "input_folder": Param("", type="string", title="Input folder",
                              description="Folder with one sub-folder per year; empty: <data root>/restricted/medicare."),
        "fwf_from_year": Param(2011, type="integer", title="First year of FTS + fixed-width files",
                               description="Earlier years are SAS7BDAT files."),
    },
)
def claimsflow_medicare_ingest():
    @task
    def discover(**context) -> list[dict]:
        return medicare_tasks.discover_fwf(context)

    parsed = FtsParseOperator.partial(task_id="parse_fts", pool="claimsflow_db").expand(fts_file=discover())
    loaded = MedicareFwfLoadOperator.partial(task_id="load", pool="claimsflow_db").expand(fts_file=parsed.output)

    @task
    def discover_sas(**context) -> list[str]:
        return medicare_tasks.discover_sas(context)

    @task(pool="claimsflow_db")
    def load_sas(path: str, **context) -> dict:
        return medicare_tasks.load_sas(context, path)

    sas_loaded = load_sas.expand(path=discover_sas())

    @task(outlets=[assets.MEDICARE_RAW, assets.MEDICARE_RAW_YEARS], trigger_rule="none_failed_min_one_success")
    def publish(fwf_loads: list[dict] | None, sas_loads: list[dict] | None, **context) -> dict:
        return medicare_tasks.publish(context, [*(fwf_loads or []), *(sas_loads or [])])

    publish(loaded.output, sas_loaded)


claimsflow_medicare_ingest()
