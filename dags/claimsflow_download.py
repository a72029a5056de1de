"""
### claimsflow_download — every public source onto disk, verified and resumable

Downloads into the data root (`raw/`): the CMS **Medicaid Provider Spending** parquet (schema checked),
the latest **NPPES** monthly V2 bundle and the weekly V2 bundles after it (discovered on the NPPES index
page, extracted beside the zips), the **CPT/HCPCS** archive (discovered when `raw/cpt` has no source;
nested zips unpacked, folder names cleaned, manual overlays applied, `cpt_hcpcs_fallback.csv` derived),
the **NUCC** taxonomy CSV and the licensed **Hop Teaming** zips from a URL or a local folder.

Re-runs transfer only what is missing or changed (ETag / Last-Modified); cut transfers resume with HTTP
Range; bad files are quarantined, never marked done. Every file is recorded in
`claimsflow_meta.download_manifest`; each source emits its Asset with the file and version in `extra`.
Endpoints are the connections `medicaid_spending`, `cms_downloads`, `cms_www`, `nucc`; every download
task runs in the `downloads` pool.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from claimsflow_airflow import assets, downloads
from claimsflow_airflow.defaults import DEFAULT_ARGS, START_DATE

SOURCES = ["medicaid", "nppes", "cpt", "nucc", "hop_teaming"]


@dag(
    dag_id="claimsflow_download",
    schedule="0 6 * * 1",  # weekly: NPPES publishes weekly bundles; unchanged files cost one 304 each
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "download"],
    doc_md=__doc__,
    params={
        "sources": Param(SOURCES, type="array", items={"type": "string", "enum": SOURCES}, examples=SOURCES,
                         title="Sources", description="Which sources to download."),
        "skip_nppes": Param(False, type="boolean", title="Skip NPPES", description="Skip the NPPES bundles."),
        "medicaid_url": Param("", type="string", title="Medicaid parquet URL",
                              description="Empty: the published 2026-02-09 file on the medicaid_spending connection."),
        "nppes_index_url": Param("", type="string", title="NPPES index page",
                                 description="Empty: /nppes/NPI_Files.html on the cms_downloads connection."),
        "nppes_monthly_url": Param("", type="string", title="NPPES monthly bundle URL",
                                   description="Pin one bundle; empty: discover the latest on the index page."),
        "nppes_weekly_url": Param("", type="string", title="NPPES weekly bundle URL",
                                  description="Pin one bundle; empty: every weekly bundle after the monthly one."),
        "cpt_index_url": Param("", type="string", title="CPT archive index page",
                               description="Empty: the PFREV26A page on the cms_www connection."),
        "cpt_zip_urls": Param([], type="array", items={"type": "string"}, title="CPT/HCPCS archive URLs",
                              description="Archives to download; empty: discover one when raw/cpt has no source."),
        "nucc_url": Param("", type="string", title="NUCC taxonomy CSV URL",
                          description="Empty: /images/stories/CSV/nucc_taxonomy_251.csv on the nucc connection."),
        "hop_teaming_years": Param([], type="array", items={"type": "integer"}, title="Hop Teaming years",
                                   description="Empty: every year found in the folder (required for a URL)."),
        "hop_teaming_location": Param("", type="string", title="Hop Teaming location",
                                      description="A URL or a local folder; empty: <data root>/restricted/hop_teaming."),
    },
)
def claimsflow_download():
    @task(pool="claimsflow_db")
    def prepare_manifest() -> None:
        downloads.prepare_meta()

    @task(pool="downloads", outlets=[assets.RAW_MEDICAID_SPENDING])
    def medicaid(**context) -> dict:
        return downloads.medicaid(context)

    @task(pool="downloads")
    def discover_nppes(**context) -> list[dict]:
        return downloads.nppes_bundles(context)

    @task(pool="downloads", max_active_tis_per_dagrun=3)
    def nppes_bundle(bundle: dict, **context) -> dict:
        return downloads.nppes_bundle(context, bundle)

    @task(outlets=[assets.RAW_NPPES])
    def publish_nppes(bundles: list[dict], **context) -> dict:
        return downloads.publish_nppes(context, list(bundles))

    @task(pool="downloads", outlets=[assets.RAW_CPT_FALLBACK])
    def cpt(**context) -> dict:
        return downloads.cpt(context)

    @task(pool="downloads", outlets=[assets.RAW_NUCC_TAXONOMY])
    def nucc(**context) -> dict:
        return downloads.nucc(context)

    @task(pool="downloads", outlets=[assets.RAW_HOP_TEAMING])
    def hop_teaming(**context) -> dict:
        return downloads.hop_teaming(context)

    ready = prepare_manifest()
    fetched = nppes_bundle.expand(bundle=discover_nppes())
    ready >> [medicaid(), fetched, cpt(), nucc(), hop_teaming()]
    publish_nppes(fetched)


claimsflow_download()
