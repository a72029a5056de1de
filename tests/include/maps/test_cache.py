"""The map caches on the real test PostgreSQL: upsert precedence, pending, coverage."""

from __future__ import annotations

import pytest

from include.maps import cache
from include.maps.cache import CacheRow


def test_upsert_pending_and_coverage(maps_db):
    pg = maps_db
    cache.replace_wanted(pg, "npi", [("1234567893", True), ("1111111111", False), ("1457300006", True),
                                     ("1003000126", True)])
    assert cache.pending(pg, "npi") == ["1003000126", "1111111111", "1234567893", "1457300006"]
    cache.upsert(pg, "npi", [
        CacheRow("1234567893", "found", "bulk", response_json={"result_count": 1, "results": [{"number": "1234567893"}]}),
        CacheRow("1111111111", "invalid", "input", error_message="fails the NPI check digit"),
        CacheRow("1457300006", "error", "api", url="http://x/api/", request_params={"number": "1457300006"},
                 error_message="HTTP 503", requested_at_utc=cache.utc_now()),
    ])
    assert cache.pending(pg, "npi") == ["1003000126", "1457300006"]
    assert cache.coverage(pg, "npi") == {"found": 1, "invalid": 1, "error": 1, "missing_cache": 1}

    # an error never replaces a definite answer; a definite answer replaces an error
    cache.upsert(pg, "npi", [CacheRow("1234567893", "error", "api", error_message="timeout"),
                             CacheRow("1457300006", "not_found", "api", response_json={"result_count": 0, "results": []})])
    rows = dict(pg.execute("SELECT npi, status FROM maps.npi_cache").fetchall())
    assert rows == {"1234567893": "found", "1111111111": "invalid", "1457300006": "not_found"}
    payload = pg.execute("SELECT response_json FROM maps.npi_cache WHERE npi = '1234567893'").fetchone()[0]
    assert payload["results"][0]["number"] == "1234567893"

    # within one batch the last row for an identifier wins
    cache.upsert(pg, "npi", [CacheRow("1003000126", "error", "api"), CacheRow("1003000126", "found", "api")])
    assert pg.execute("SELECT status FROM maps.npi_cache WHERE npi = '1003000126'").fetchone()[0] == "found"
    assert cache.pending(pg, "npi") == []


def test_bad_rows_are_refused_before_anything_is_written(maps_db):
    with pytest.raises(ValueError, match="source 'fallback'"):
        cache.upsert(maps_db, "npi", [CacheRow("1234567893", "found", "fallback")])
    with pytest.raises(ValueError, match="status 'maybe'"):
        cache.upsert(maps_db, "hcpcs", [CacheRow("J1100", "found", "api"), CacheRow("99213", "maybe", "api")])
    assert maps_db.execute("SELECT count(*) FROM maps.hcpcs_cache").fetchone()[0] == 0


def test_reset_and_hcpcs_kind(maps_db):
    cache.replace_wanted(maps_db, "hcpcs", [("99213",), ("J1100",)])
    cache.upsert(maps_db, "hcpcs", [CacheRow("99213", "found", "fallback", response_json=[1, ["99213"], None, [["x"]]])])
    assert cache.pending(maps_db, "hcpcs") == ["J1100"]
    cache.reset(maps_db)
    assert cache.coverage(maps_db, "hcpcs") == {"missing_cache": 2}
    assert cache.in_batches(["a", "b", "c"], 2) == [["a", "b"], ["c"]]


def test_shards_split_the_pending_work(maps_db):
    npis = [f"1{i:09d}" for i in range(200)]
    cache.replace_wanted(maps_db, "npi", [(n, True) for n in npis])
    parts = [cache.pending(maps_db, "npi", shard=i, shards=3) for i in range(3)]
    assert sorted(sum(parts, [])) == npis and all(parts)
    with pytest.raises(ValueError):
        cache.pending(maps_db, "npi", shard=3, shards=3)
