"""The map caches on the real test PostgreSQL: upsert precedence, pending, coverage."""

from __future__ import annotations

import pytest

from include.common.errors import DatabaseError
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


def test_upsert_json_writes_what_upsert_writes(maps_db):
    """Rows built column-wise (identifiers and JSON text in Arrow) land as `upsert` lands them: replacing
    older rows, values with COPY's special characters intact; a key twice falls back to upsert's way."""
    import json

    import pyarrow as pa

    pg = maps_db
    cache.upsert(pg, "npi", [CacheRow("1234567893", "error", "api", error_message="timeout"),
                             CacheRow("1457300006", "found", "api", response_json={"old": True})])
    odd = {"name": 'tab\there, new\nline, back\\slash "quoted" \r é', "n": [1, None, True]}
    texts = [json.dumps(odd, ensure_ascii=False), '{"plain":1}', '{"x":"\\u0001"}']
    keys = ["1234567893", "1457300006", "1003000126"]
    n = cache.upsert_json(pg, "npi", pa.array(keys), pa.array(texts), status="found", source="bulk",
                          request_params={"source_file": "a\tb.csv"}, api_run_id="run\\1")
    assert n == 3
    rows = {r[0]: r[1:] for r in pg.execute(
        "SELECT npi, status, source, url, request_params, api_run_id, requested_at_utc, error_message, response_json "
        "FROM maps.npi_cache").fetchall()}
    assert rows == {k: ("found", "bulk", None, {"source_file": "a\tb.csv"}, "run\\1", None, None, json.loads(t))
                    for k, t in zip(keys, texts, strict=True)}

    # the same key twice in one batch: the later row wins, as in upsert
    cache.upsert_json(pg, "npi", pa.array(["1003000126", "1003000126"]), pa.array(['{"v":1}', '{"v":2}']),
                      status="found", source="bulk")
    assert pg.execute("SELECT response_json FROM maps.npi_cache WHERE npi = '1003000126'").fetchone()[0] == {"v": 2}
    # an error batch spares definite answers (upsert's rule)
    cache.upsert_json(pg, "npi", pa.array(["1457300006"]), pa.array([None], pa.string()), status="error",
                      source="api")
    assert pg.execute("SELECT status FROM maps.npi_cache WHERE npi = '1457300006'").fetchone()[0] == "found"
    with pytest.raises(ValueError, match="source 'fallback'"):
        cache.upsert_json(pg, "npi", pa.array(["1234567893"]), pa.array(["{}"]), status="found", source="fallback")
    # JSON PostgreSQL refuses: the batch is refused whole, the rows before it stay
    with pytest.raises(DatabaseError, match="COPY failed.*json"):
        cache.upsert_json(pg, "npi", pa.array(["1234567893", "1003000126"]), pa.array(["{}", "{not json"]),
                          status="found", source="bulk")
    assert pg.execute("SELECT response_json FROM maps.npi_cache WHERE npi = '1234567893'").fetchone()[0] == \
        json.loads(texts[0])
    assert cache.upsert_json(pg, "npi", pa.array([], pa.string()), pa.array([], pa.string()), status="found",
                             source="bulk") == 0

    # identifiers with quotes, backslashes, commas and braces replace their rows too
    odd_keys = ['A"1', "B\\2", "C,3", "{D}", "E 5"]
    cache.upsert(pg, "hcpcs", [CacheRow(k, "error", "api", error_message="x") for k in odd_keys])
    cache.upsert_json(pg, "hcpcs", pa.array(odd_keys), pa.array(["[1]"] * len(odd_keys)), status="found",
                      source="fallback")
    assert dict(pg.execute("SELECT hcpcs_code, status FROM maps.hcpcs_cache").fetchall()) == \
        dict.fromkeys(odd_keys, "found")
