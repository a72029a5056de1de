"""
### claimsflow_maps — every NPI and HCPCS code of the Medicaid spending data, resolved

Runs when the spending parquet or NPPES changes (Assets `raw_medicaid_spending` | `raw_nppes`) and from
the UI. NPI and HCPCS branches run in parallel:

- **NPI**: distinct billing + servicing NPIs → NPIs failing the check digit are marked `invalid` (never
  sent) → **NPPES bulk** preload (newest monthly + newer weeklies, projected columns, API-shaped
  payloads) → **NPI Registry API** only for what is left, in `concurrency` mapped tasks in pool
  `npi_registry_api`.
- **HCPCS**: distinct codes → the local **fallback CSV** seeded into the cache → **Clinical Tables API**
  in batched OR queries (`hcpcs_batch_size` codes a request, a failed batch retried code by code), in
  pool `clinical_tables_api`.

The `requests_per_second` limit holds for all mapped tasks of an API together (the request slots and the
last actual send times live in PostgreSQL, `claimsflow_meta.rate_limits`: no 1 s window ever holds more
than `requests_per_second` requests, even when a task sends late); the pool size caps how many run at
once. Every answer is cached in PostgreSQL (`maps.npi_cache`, `maps.hcpcs_cache`), so an interrupted run
resumes where it stopped. Outputs under the data root: `output/npi.parquet`, `output/hcpcs.parquet`,
`mappings/npi/npi_provider_mapping.csv`, `mappings/hcpcs/hcpcs_code_mapping.csv`,
`unresolved_identifiers.csv`, and tables `maps.npi`, `maps.hcpcs`.

The run skips its work when the outputs exist and every identifier is resolved; `rebuild_map` rebuilds the
outputs from the caches, `reset_map` clears caches and maps first.

**Hugging Face upload** (opt-in, off by default): with `hf_repo_id` and at least one `hf_upload_*` flag,
`hf_upload` commits the chosen outputs and a dataset card (`configs:` npi, hcpcs, npi_mapping,
hcpcs_mapping) to that dataset repo, created if missing; token and endpoint from connection
`huggingface`. Unchanged files are not committed again. LFS files (the parquets) go through the Hub's
LFS batch API, the tested path; `hf_use_xet` sends them through Xet storage instead (not tested).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from claimsflow_airflow import assets, map_tasks
from claimsflow_airflow.defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="claimsflow_maps",
    schedule=(assets.RAW_MEDICAID_SPENDING | assets.RAW_NPPES),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "maps"],
    doc_md=__doc__,
    params={
        "rebuild_map": Param(False, type="boolean", title="Rebuild maps",
                             description="Rebuild the outputs from the caches even when nothing is left to resolve."),
        "reset_map": Param(False, type="boolean", title="Reset maps",
                           description="Delete the caches and the maps first, and resolve everything again."),
        "skip_api": Param(False, type="boolean", title="Skip the APIs",
                          description="No API requests: NPPES bulk and the fallback only; cached answers are still exported."),
        "skip_nppes_bulk": Param(False, type="boolean", title="Skip the NPPES bulk preload"),
        "requests_per_second": Param(2.0, type="number", exclusiveMinimum=0, maximum=50, title="Requests per second",
                                     description="Per API, for all its concurrent tasks together."),
        "concurrency": Param(2, type="integer", minimum=1, maximum=16, title="Concurrent API tasks",
                             description="Mapped API tasks per API; the pool's size caps how many run at once."),
        "hcpcs_batch_size": Param(100, type="integer", minimum=1, maximum=500, title="HCPCS codes per request"),
        "hcpcs_fallback_csv": Param("", type="string", title="HCPCS fallback CSV",
                                    description="Empty: raw/cpt/cpt_hcpcs_fallback.csv under the data root."),
        "unresolved_report_csv": Param("", type="string", title="Copy the unresolved report to",
                                       description="Empty: only <data root>/unresolved_identifiers.csv."),
        "spending_parquet": Param("", type="string", title="Spending parquet",
                                  description="Empty: the downloaded raw/medicaid/medicaid-provider-spending.parquet."),
        "nppes_dir": Param("", type="string", title="NPPES folder",
                           description="Empty: raw/nppes (monthly/ and weekly/ extracted bundles)."),
        "hf_repo_id": Param("", type="string", pattern=r"^([\w.-]+/[\w.-]+)?$", title="Hugging Face dataset repo",
                            description="<user or org>/<name>; empty: no upload. Token: connection huggingface."),
        "hf_upload_npi": Param(False, type="boolean", title="Upload output/npi.parquet (config npi)"),
        "hf_upload_hcpcs": Param(False, type="boolean", title="Upload output/hcpcs.parquet (config hcpcs)"),
        "hf_upload_mapping": Param(False, type="boolean", title="Upload the NPI mapping CSV (config npi_mapping)"),
        "hf_upload_hcpcs_mapping": Param(False, type="boolean",
                                         title="Upload the HCPCS mapping CSV (config hcpcs_mapping)"),
        "hf_npi_path_in_repo": Param("npi/npi.parquet", type="string", minLength=1, title="NPI parquet path in repo"),
        "hf_hcpcs_path_in_repo": Param("hcpcs/hcpcs.parquet", type="string", minLength=1,
                                       title="HCPCS parquet path in repo"),
        "hf_use_xet": Param(False, type="boolean", title="Upload LFS files through Xet storage (untested)",
                            description="Off (default): the parquets go through the Hub's LFS batch API, the path "
                                        "the tests cover. On: through Xet storage (hf_xet), which claimsflow's "
                                        "tests do not cover beyond its first requests."),
    },
)
def claimsflow_maps():
    @task(pool="claimsflow_db")
    def prepare(**context) -> dict:
        return map_tasks.prepare(context)

    @task(pool="claimsflow_db")
    def npi_bulk(plan: dict, **context) -> dict:
        return map_tasks.npi_bulk(context, plan)

    @task(trigger_rule="none_failed")
    def npi_shards(plan: dict, **context) -> list[int]:
        return map_tasks.shards(context, plan)

    @task(pool="npi_registry_api")
    def npi_api(shard: int, **context) -> dict:
        return map_tasks.npi_api_shard(context, shard)

    @task(pool="claimsflow_db")
    def hcpcs_fallback(plan: dict, **context) -> dict:
        return map_tasks.hcpcs_fallback(context, plan)

    @task(trigger_rule="none_failed")
    def hcpcs_shards(plan: dict, **context) -> list[int]:
        return map_tasks.shards(context, plan)

    @task(pool="clinical_tables_api")
    def hcpcs_api(shard: int, **context) -> dict:
        return map_tasks.hcpcs_api_shard(context, shard)

    @task(pool="claimsflow_db", trigger_rule="none_failed", outlets=[assets.MAP_NPI, assets.MAP_HCPCS])
    def export(plan: dict, **context) -> dict:
        return map_tasks.export(context, plan)

    @task(trigger_rule="none_failed")  # also after a skipped export: the outputs are there
    def hf_upload(**context) -> list[dict]:
        return map_tasks.hf_upload(context)

    plan = prepare()
    bulk = npi_bulk(plan)
    npi_shard_ids = npi_shards(plan)
    bulk >> npi_shard_ids
    npi_done = npi_api.expand(shard=npi_shard_ids)

    seeded = hcpcs_fallback(plan)
    hcpcs_shard_ids = hcpcs_shards(plan)
    seeded >> hcpcs_shard_ids
    hcpcs_done = hcpcs_api.expand(shard=hcpcs_shard_ids)

    exported = export(plan)
    [npi_done, hcpcs_done] >> exported
    exported >> hf_upload()


claimsflow_maps()
