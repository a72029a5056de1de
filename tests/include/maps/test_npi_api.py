"""NPI side of the maps on the sandbox: spending identifiers, the NPI Registry lookups, faults, and the
shared requests-per-second limit seen from the server's request log."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from include.http.client import HttpClient, RetryPolicy
from include.http.pg_limiter import PgRateLimiter
from include.maps import cache, npi_api, spending
from include.sandbox.core import MEDICAID_PATH, Manifest, make_npi
from include.sandbox.providers import category_of

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)


def by_category(tiny_sandbox) -> dict[str, list[str]]:
    m = Manifest.read(tiny_sandbox)
    n = m.scale["spending_npis"]
    out: dict[str, list[str]] = {}
    for i in range(n):
        cat = category_of(m.seed, i, n)
        out.setdefault(cat, []).append(make_npi(i, valid=cat != "invalid"))
    return out


def test_spending_identifiers_match_the_manifest(tiny_sandbox):
    m = Manifest.read(tiny_sandbox)
    ids = spending.distinct_identifiers(tiny_sandbox / "site" / MEDICAID_PATH)
    assert ids.rows == m.counts["spending.rows"]
    assert len(ids.npis) == m.counts["spending.distinct_npis"]
    assert len(ids.codes) == m.counts["spending.distinct_hcpcs"]
    invalid = [n for n, ok in ids.npi_rows() if not ok]
    assert len(invalid) == m.counts["spending.invalid_npis"] + m.defects["medicaid.garbage_npi"]["count"]
    assert set(by_category(tiny_sandbox)["invalid"]) <= set(invalid)


def test_lookups_store_found_not_found_and_never_send_invalid(tiny_sandbox, sandbox_server, maps_db):
    cats = by_category(tiny_sandbox)
    wanted = cats["api_only"] + cats["nowhere"] + cats["weekly_new"]
    client = HttpClient(sandbox_server.url, retry=FAST)
    sandbox_server.clear_requests()
    stats = npi_api.resolve(maps_db, client, wanted, api_run_id="t1", commit_every=5)
    assert (stats.found, stats.not_found, stats.error) == (len(cats["api_only"]) + len(cats["weekly_new"]),
                                                           len(cats["nowhere"]), 0)
    assert len(sandbox_server.requests("/api/")) == len(wanted)
    rows = dict(maps_db.execute("SELECT npi, status FROM maps.npi_cache").fetchall())
    assert all(rows[n] == "found" for n in cats["api_only"]) and all(rows[n] == "not_found" for n in cats["nowhere"])
    found = maps_db.execute("SELECT url, request_params, api_run_id, response_json FROM maps.npi_cache "
                            "WHERE npi = %s", (cats["api_only"][0],)).fetchone()
    assert found[0].endswith("/api/") and found[1] == {"version": "2.1", "number": cats["api_only"][0]}
    assert found[2] == "t1" and found[3]["results"][0]["number"] == cats["api_only"][0]
    with pytest.raises(ValueError, match="check digit"):
        npi_api.resolve(maps_db, client, cats["invalid"][:1])
    assert len(sandbox_server.requests("/api/")) == len(wanted)
    assert all(r.status == "invalid" for r in npi_api.invalid_rows(cats["invalid"]))


def test_faults_end_in_errors_that_the_next_run_resolves(tiny_sandbox, sandbox_server, maps_db):
    cats = by_category(tiny_sandbox)
    wanted = cats["api_only"][:6]
    cache.replace_wanted(maps_db, "npi", [(n, True) for n in wanted])
    client = HttpClient(sandbox_server.url, retry=FAST)
    sandbox_server.inject("429", path="/api/", count=2, retry_after=0)  # honoured, then fine
    sandbox_server.inject("5xx", path="/api/", count=3)  # exhausts the 3 attempts of one NPI
    sandbox_server.inject("malformed_json", path="/api/", count=3)  # and of another
    first = npi_api.resolve(maps_db, client, wanted, api_run_id="t2")
    assert (first.found, first.error) == (4, 2)
    assert len(cache.pending(maps_db, "npi")) == 2
    errors = [r[0] for r in maps_db.execute("SELECT error_message FROM maps.npi_cache WHERE status = 'error'")]
    assert any("503" in e or "HTTP 5" in e for e in errors) and any("not JSON" in e for e in errors)
    sandbox_server.clear_requests()
    second = npi_api.resolve(maps_db, client, cache.pending(maps_db, "npi"), api_run_id="t3")
    assert second.found == 2 and cache.pending(maps_db, "npi") == []
    assert len(sandbox_server.requests("/api/")) == 2, "the rerun asks only for what is not cached"


def test_two_workers_share_two_requests_per_second(tiny_sandbox, sandbox_server, db_conninfo, maps_db):
    cats = by_category(tiny_sandbox)
    npis = (cats["bulk"] * 2)[:16]
    sandbox_server.set_rate_limit(2, burst=2)  # the server enforces the real limit: 429 beyond it
    sandbox_server.clear_requests()
    name = f"npi-test-{uuid.uuid4().hex[:6]}"

    def worker(part):
        limiter = PgRateLimiter(lambda: psycopg.connect(db_conninfo), name, 2.0)
        client = HttpClient(sandbox_server.url, retry=FAST, limiter=limiter)
        try:
            for n in part:
                npi_api.lookup(client, n)
        finally:
            limiter.close()

    threads = [threading.Thread(target=worker, args=(npis[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sandbox_server.set_rate_limit(None)
    log = sandbox_server.requests("/api/")
    assert len(log) == len(npis) and all(r.status == 200 for r in log), "never a 429"
    stamps = sorted(r.ts for r in log)
    assert max(sum(1 for s in stamps if t <= s < t + 1.0) for t in stamps) <= 2
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert achieved >= 0.9 * 2, f"achieved {achieved:.2f} requests/s"
