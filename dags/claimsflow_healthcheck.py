"""
### claimsflow_healthcheck — is this deployment ready?

Checks, against the real `claimsflow_db` connection and data root, everything the other DAGs rely on:
PostgreSQL answers, the `hll` extension is installed, `COPY` streams rows, HyperLogLog estimates
them, and the data root is writable with free space. Creates the `claimsflow_meta` schema (load
manifest) when missing and records each check in `claimsflow_meta.healthcheck`.

Run it after deploying or changing connections. Params: `rows`, how many rows the COPY probe streams.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from claimsflow_airflow.defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="claimsflow_healthcheck",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "platform"],
    doc_md=__doc__,
    params={
        "rows": Param(
            10_000,
            type="integer",
            minimum=100,
            maximum=10_000_000,
            title="Rows for the COPY probe",
            description="How many rows to stream through COPY and count with HyperLogLog.",
        ),
    },
)
def claimsflow_healthcheck():
    @task(pool="claimsflow_db")
    def check_platform(**context) -> dict:
        from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
        from claimsflow_airflow.settings import data_root, run_info
        from include.meta.healthcheck import run_healthcheck

        with ClaimsflowPostgresHook().pg_connection() as conn:
            result = run_healthcheck(conn, data_root(), run_info(context), rows=context["params"]["rows"])
        rate = result["copy_rows"] / max(result["copy_seconds"], 1e-9)
        print(
            f"PostgreSQL {result['server_version']}, hll {result['hll_version']}: COPY {result['copy_rows']:,} rows "
            f"at {rate:,.0f} rows/s, hll estimate {result['hll_estimate']:,}; data root {result['data_root']} "
            f"with {result['data_root_free_bytes'] / 2**30:,.1f} GiB free"
        )
        return result

    check_platform()


claimsflow_healthcheck()
