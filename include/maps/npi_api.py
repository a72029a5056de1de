"""NPI Registry API v2.1 lookups for the NPIs the NPPES bulk files did not resolve.

One GET per NPI (`/api/?version=2.1&number=<npi>`), through an HttpClient whose limiter is shared by
every concurrent task (PgRateLimiter). Outcomes go to the cache every `commit_every` NPIs, so a killed
run loses at most that many answers and refetches nothing it had stored:

- `result_count` ≥ 1 → found (the whole response kept as response_json);
- `result_count` 0 → not_found;
- an `Errors` answer, HTTP errors after the client's retries, or a body that is not the API's shape →
  error with the message (retried by the next run; never replaces a found/not_found).

NPIs that fail the check digit are never sent (the caller marks them invalid: `invalid_rows`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

from include.common.errors import ClaimsflowError
from include.common.npi import is_valid_npi
from include.http.client import HttpClient
from include.maps import cache
from include.maps.cache import CacheRow

log = logging.getLogger("claimsflow.maps.npi")

API_PATH = "/api/"
API_VERSION = "2.1"


@dataclass
class NpiApiStats:
    requested: int = 0
    found: int = 0
    not_found: int = 0
    error: int = 0
    seconds: float = 0.0

    def add(self, row: CacheRow) -> None:
        setattr(self, row.status, getattr(self, row.status) + 1)


def invalid_rows(npis: Iterable[str], api_run_id: str | None = None) -> list[CacheRow]:
    return [CacheRow(n, "invalid", "input", api_run_id=api_run_id, requested_at_utc=cache.utc_now(),
                     error_message="fails the NPI check digit (Luhn over 80840 + first nine digits); not sent to the API")
            for n in npis if not is_valid_npi(n)]


def lookup(client: HttpClient, npi: str, *, api_run_id: str | None = None) -> CacheRow:
    params = {"version": API_VERSION, "number": npi}
    url = client.url(API_PATH)
    requested_at = cache.utc_now()
    common = {"url": url, "request_params": params, "api_run_id": api_run_id, "requested_at_utc": requested_at}
    try:
        data = client.get_json(API_PATH, params=params)
    except ClaimsflowError as exc:
        return CacheRow(npi, "error", "api", error_message=str(exc), **common)
    if not isinstance(data, dict):
        return CacheRow(npi, "error", "api", error_message=f"unexpected answer (not an object): {str(data)[:200]}",
                        response_json=data, **common)
    if data.get("Errors"):
        message = "; ".join(str(e.get("description", e)) for e in data["Errors"] if isinstance(e, dict)) or str(data["Errors"])
        return CacheRow(npi, "error", "api", error_message=f"API error: {message}", response_json=data, **common)
    count, results = data.get("result_count"), data.get("results")
    if not isinstance(count, int) or not isinstance(results, list):
        return CacheRow(npi, "error", "api", error_message="answer without result_count/results", response_json=data,
                        **common)
    if count == 0 or not results:
        return CacheRow(npi, "not_found", "api", response_json=data, **common)
    if not any(str(r.get("number")) == npi for r in results if isinstance(r, dict)):
        return CacheRow(npi, "error", "api", error_message="the API answered for another NPI", response_json=data,
                        **common)
    return CacheRow(npi, "found", "api", response_json=data, **common)


def resolve(conn: psycopg.Connection, client: HttpClient, npis: Sequence[str], *, api_run_id: str | None = None,
            commit_every: int = 25) -> NpiApiStats:
    """Look up `npis` (valid ones only) one by one, storing outcomes every `commit_every`."""
    stats = NpiApiStats()
    started = time.monotonic()
    pending: list[CacheRow] = []
    for npi in npis:
        if not is_valid_npi(npi):
            raise ValueError(f"{npi!r} fails the NPI check digit and must not be sent to the API")
        row = lookup(client, npi, api_run_id=api_run_id)
        stats.requested += 1
        stats.add(row)
        pending.append(row)
        if len(pending) >= commit_every:
            cache.upsert(conn, "npi", pending)
            pending = []
    if pending:
        cache.upsert(conn, "npi", pending)
    stats.seconds = time.monotonic() - started
    log.info("NPI API: %d requested, %d found, %d not found, %d errors in %.1fs", stats.requested, stats.found,
             stats.not_found, stats.error, stats.seconds)
    return stats
