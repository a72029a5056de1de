"""(Not named nppes.py: Airflow imports every plugins/ file under its bare stem, so a generic name could
shadow, or be shadowed by, another module of that name.)

`NppesReleaseSensor`: waits until the NPPES index page links a monthly V2 bundle newer than the newest
one in `claimsflow_meta.download_manifest`.

Each poke reads the index page (the endpoint connection, `cms_downloads` by default, through
`ClaimsflowHttpHook`: rate limit and retries from the connection) and the newest fetched
`nppes_monthly` version from the manifest (`claimsflow_db`), and compares them with
`include.download.discover.newer_monthly`. When the page is ahead, the sensor succeeds with the release
as its XCom value:

    {"url": ..., "version": "2026-12", "kind": "monthly", "name": "NPPES_..._V2.zip",
     "known_version": "2026-11" | None, "index_url": ...,
     "bundles": [{"kind": "monthly", ...}, {"kind": "weekly", ...}, ...]}   # what to fetch, in order

Failure handling:
- index page unreachable after the client's retries (connection errors, 5xx, 429): the poke logs a
  warning and returns False, so the sensor tries again at the next poke;
- configuration problems fail the task at once: a missing connection, a 4xx answer for the page
  (wrong URL or credentials), a page that links no monthly V2 bundle (the layout changed: pin a URL in
  claimsflow_download until the discovery catches up);
- no new release before `timeout`: SKIPPED with soft_fail=True (the default), not failed.

Defaults suit a monthly schedule: mode "reschedule" (no worker slot held between pokes), a poke every
6 hours, a timeout of 3 days. `timeout_seconds` / `poke_interval_seconds` are templated overrides
(e.g. "{{ params.poke_timeout }}"), applied when the task starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.bases.sensor import BaseSensorOperator, PokeReturnValue

from claimsflow_airflow.downloads import bundle_ref
from claimsflow_airflow.hooks.endpoint import ClaimsflowHttpHook
from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
from include.common.errors import ConfigurationError, HttpError
from include.download import discover, sources
from include.download import manifest as download_manifest

# 4xx answers that retrying cannot fix: the URL or the credentials are wrong.
TRANSIENT_CLIENT_STATUSES = frozenset({408, 425, 429})


class NppesReleaseSensor(BaseSensorOperator):
    """Succeeds when the NPPES index page shows a monthly bundle newer than the manifest's newest."""

    template_fields: Sequence[str] = ("http_conn_id", "index_url", "timeout_seconds", "poke_interval_seconds")
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        http_conn_id: str = "cms_downloads",
        index_url: str = "",
        dataset: str = "nppes_monthly",
        timeout_seconds: str | float | None = None,
        poke_interval_seconds: str | float | None = None,
        mode: str = "reschedule",
        poke_interval: timedelta | float = timedelta(hours=6),
        timeout: timedelta | float = timedelta(days=3),
        soft_fail: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, timeout=timeout, soft_fail=soft_fail, **kwargs)
        self.http_conn_id = http_conn_id
        self.index_url = index_url
        self.dataset = dataset
        self.timeout_seconds = timeout_seconds
        self.poke_interval_seconds = poke_interval_seconds

    # ------------------------------------------------------------------------------------------ run

    def execute(self, context: Any) -> Any:
        if _given(self.timeout_seconds):
            self.timeout = self._coerce_timeout(_seconds(self.timeout_seconds, "timeout_seconds")).total_seconds()
        if _given(self.poke_interval_seconds):
            self.poke_interval = self._coerce_poke_interval(
                _seconds(self.poke_interval_seconds, "poke_interval_seconds")).total_seconds()
        return super().execute(context)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        client = ClaimsflowHttpHook(self.http_conn_id).get_client()
        page_url = client.url(self.index_url or sources.DEFAULT_NPPES_INDEX_PATH)
        try:
            listing = sources.nppes_listing(client, self.index_url)
        except HttpError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in TRANSIENT_CLIENT_STATUSES:
                raise ConfigurationError(
                    f"the NPPES index page answered HTTP {exc.status}; check the {self.http_conn_id!r} connection "
                    f"and the index URL", source=page_url) from exc
            self.log.warning("NPPES index page unreachable (%s); trying again at the next poke", exc)
            return False
        finally:
            client.close()
        known = self.known_version()
        newer = discover.newer_monthly(listing, known)
        if newer is None:
            self.log.info("no new NPPES monthly bundle: the index page's latest is %s, already fetched %s",
                          listing.latest_monthly.version, known)
            return False
        bundles = discover.release_bundles(listing, newer)
        self.log.info("new NPPES monthly bundle %s (fetched so far: %s) at %s; with %d weekly bundle(s) after it",
                      newer.version, known or "none", newer.url, len(bundles) - 1)
        return PokeReturnValue(is_done=True, xcom_value={
            "url": newer.url, "version": newer.version, "kind": newer.kind, "name": newer.name,
            "known_version": known, "index_url": page_url, "bundles": [bundle_ref(b) for b in bundles]})

    def known_version(self) -> str | None:
        """The newest version of the dataset fetched and verified so far (None: never fetched)."""
        with ClaimsflowPostgresHook().pg_connection() as conn:
            download_manifest.ensure_tables(conn)
            return download_manifest.latest_version(conn, self.dataset)


def _given(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _seconds(value: Any, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    if seconds < 0:
        raise ConfigurationError(f"{name} must not be negative, got {value!r}")
    return seconds
