"""
### claimsflow_hop_teaming — the DocGraph shared-patient graph, checked, enriched, with referral likelihood

Runs when the Hop Teaming zips, NPPES or the NUCC taxonomy change (Assets), once a year, by backfill
year by year (`airflow backfill create --dag-id claimsflow_hop_teaming --from-date 2014-01-01
--to-date 2022-12-31`), and from the UI (`year`, or every year of the input folder).

1. `years` — the run's years; `reference` — `hop.nucc_taxonomy` (any NUCC header variant) and
   `hop.npi_spending` (each NPI's Medicaid totals as billing and servicing provider);
2. per year (mapped, pool `claimsflow_db`): `load` streams the zip member into PostgreSQL with COPY
   (never extracted; header checked; line numbers kept; bad lines refused with the reason);
   `npis` — check digits, NPPES facts (the maps' NPPES reader; newest bundle wins; primary taxonomy by
   its switch), NUCC, spending; `check_and_enrich` — every line either an enriched edge or an audit row
   with its reasons, counts per check, the referral score from `include/hop_teaming/referral_rules.yaml`,
   the per-NPI summary;
3. `publish` swaps each year's partitions of `hop.edges` (compact scored edges), `hop.npis` (the year's
   NPI facts), `hop.audit`, `hop.npi_summary` and its `hop.data_quality` / `hop.loads` rows in one
   transaction (the view `hop.edges_enriched` joins edges to both ends' facts), writes
   `output/hop_teaming/edges_enriched_<year>.parquet` and emits `hop_edges_enriched`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from claimsflow_airflow import assets, hop_teaming_tasks
from claimsflow_airflow.defaults import DEFAULT_ARGS


@dag(
    dag_id="claimsflow_hop_teaming",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 1 1 *", timezone="UTC"),
        assets=(assets.RAW_HOP_TEAMING | assets.RAW_NPPES | assets.RAW_NUCC_TAXONOMY),
    ),
    start_date=pendulum.datetime(2014, 1, 1, tz="UTC"),
    catchup=False,  # years run on demand: a manual run, an asset event, or a backfill over a range
    max_active_runs=1,  # the reference tables are shared by the years of a run
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "hop_teaming"],
    doc_md=__doc__,
    params={
        "year": Param(None, type=["null", "integer"], minimum=2009, maximum=2100, title="Year",
                      description="Empty: a scheduled/backfill run's year, else every year with a zip."),
        "input_folder": Param("", type="string", title="Hop Teaming folder",
                              description="The yearly zips; empty: <data root>/raw/hop_teaming."),
        "nppes_dir": Param("", type="string", title="NPPES folder",
                           description="Extracted NPPES bundles; empty: <data root>/raw/nppes."),
        "nucc_csv": Param("", type="string", title="NUCC taxonomy CSV",
                          description="Empty: the newest <data root>/raw/nucc/nucc_taxonomy_*.csv."),
        "spending_parquet": Param("", type="string", title="Medicaid spending parquet",
                                  description="Empty: <data root>/raw/medicaid/medicaid-provider-spending.parquet."),
        "referral_rules": Param("", type="string", title="Referral rules (YAML)",
                                description="Empty: include/hop_teaming/referral_rules.yaml."),
        "output_folder": Param("", type="string", title="Parquet output folder",
                               description="Empty: <data root>/output/hop_teaming."),
    },
)
def claimsflow_hop_teaming():
    @task
    def years(**context) -> list[int]:
        return hop_teaming_tasks.years(context)

    @task
    def reference(**context) -> dict:
        return hop_teaming_tasks.reference(context)

    @task(pool="claimsflow_db")
    def load(year: int, **context) -> dict:
        return hop_teaming_tasks.load(context, year)

    @task(pool="claimsflow_db")
    def npis(loaded: dict, **context) -> dict:
        return hop_teaming_tasks.npis(context, loaded)

    @task(pool="claimsflow_db")
    def check_and_enrich(built: dict, **context) -> dict:
        return hop_teaming_tasks.check_and_enrich(context, built)

    @task(outlets=[assets.HOP_EDGES])
    def publish(checked: list[dict], **context) -> dict:
        return hop_teaming_tasks.publish(context, list(checked))

    ref = reference()
    loaded = load.expand(year=years())
    ref >> loaded
    publish(check_and_enrich.expand(built=npis.expand(loaded=loaded)))


claimsflow_hop_teaming()
