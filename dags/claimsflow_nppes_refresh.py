"""
### claimsflow_nppes_refresh — the new NPPES monthly bundle, as soon as CMS publishes it

Once a month, `wait_for_release` (NppesReleaseSensor, reschedule mode) reads the NPPES index page on the
`cms_downloads` connection every `poke_interval` seconds and compares its latest monthly V2 bundle with
the newest `nppes_monthly` version in `claimsflow_meta.download_manifest`. When the page is ahead, the
run downloads that bundle and the weekly bundles after it (resumable, zip-tested, extracted, each file a
manifest row; `downloads` pool) and emits `raw_nppes` with `extra.version` = the new month and
`extra.previous_version` = the month it replaces.

Nothing new within `poke_timeout` seconds: the sensor ends **skipped** (soft fail) and so does the
rest of the run — not a failure. An unreachable index page is retried at the next poke; a wrong
connection/URL (HTTP 4xx) or a page without monthly links fails the sensor.

`claimsflow_download` (weekly) also fetches the latest monthly bundle; both share the task functions
and the manifest, so whichever runs first does the transfer and the other sees it as done.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from claimsflow_airflow import assets, downloads
from claimsflow_airflow.defaults import DEFAULT_ARGS, START_DATE
from claimsflow_airflow.sensors.nppes_release import NppesReleaseSensor

POKE_TIMEOUT = int(timedelta(days=7).total_seconds())
POKE_INTERVAL = int(timedelta(hours=6).total_seconds())


@dag(
    dag_id="claimsflow_nppes_refresh",
    # CMS publishes the full-replacement monthly file around the second Monday of the month, which falls
    # between the 8th and the 14th. Starting on the 8th (07:00 UTC) with a 7-day poke window covers every
    # possible second Monday (and a day's slack), and a poke every 6 h picks the file up the same day.
    # Reschedule mode holds no worker slot between pokes, so the long window costs nothing.
    schedule="0 7 8 * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["claimsflow", "download", "nppes"],
    doc_md=__doc__,
    params={
        "nppes_index_url": Param("", type="string", title="NPPES index page",
                                 description="Empty: /nppes/NPI_Files.html on the cms_downloads connection."),
        "poke_timeout": Param(POKE_TIMEOUT, type="integer", minimum=0, title="Wait for a release (seconds)",
                              description="How long the sensor waits for a new monthly bundle before the run "
                                          "ends skipped (default 7 days)."),
        "poke_interval": Param(POKE_INTERVAL, type="integer", minimum=1, title="Poke interval (seconds)",
                               description="How often the index page is read while waiting (default 6 hours)."),
    },
)
def claimsflow_nppes_refresh():
    release = NppesReleaseSensor(
        task_id="wait_for_release",
        http_conn_id=downloads.CONNECTIONS["nppes"],
        index_url="{{ params.nppes_index_url }}",
        timeout_seconds="{{ params.poke_timeout }}",
        poke_interval_seconds="{{ params.poke_interval }}",
    )

    @task
    def plan_bundles(release: dict) -> list[dict]:
        return downloads.nppes_release_bundles(release)

    @task(pool="downloads", max_active_tis_per_dagrun=3)
    def nppes_bundle(bundle: dict, **context) -> dict:
        return downloads.nppes_bundle(context, bundle)

    @task(outlets=[assets.RAW_NPPES])
    def publish_nppes(bundles: list[dict], release: dict, **context) -> dict:
        return downloads.publish_nppes(context, list(bundles), release=release)

    fetched = nppes_bundle.expand(bundle=plan_bundles(release.output))
    publish_nppes(fetched, release.output)


claimsflow_nppes_refresh()
