"""HCPCS resolution against the in-process sandbox server (real HTTP) and the real test PostgreSQL.

Facts come from the tiny sandbox's manifest: every code of the spending parquet is `api` (in the
Clinical Tables API; some also in the fallback CSV), `fallback_cpt` / `fallback_l2` (only in the fallback
CSV) or `unknown` (in no source: `not_found` when HCPCS-shaped, else `invalid`).
"""

from __future__ import annotations

import json
import math
import time
from urllib.parse import parse_qs

import pyarrow.parquet as pq
import pytest

from include.common.errors import HttpError
from include.http.client import HttpClient, RetryPolicy
from include.maps import cache, hcpcs
from include.sandbox.core import MEDICAID_PATH, SITE

PATH = "/api/hcpcs/v3/search"
BATCH = 20


@pytest.fixture
def client(sandbox_server):
    c = HttpClient(sandbox_server.url, retry=RetryPolicy(attempts=3, backoff=0.01), timeout=(2.0, 2.0))
    yield c
    c.close()


@pytest.fixture(scope="module")
def facts(tiny_sandbox):
    """What the sandbox says the outcome must be."""
    manifest = json.loads((tiny_sandbox / "manifest.json").read_text())
    counts = manifest["counts"]
    table = pq.read_table(tiny_sandbox / SITE / MEDICAID_PATH, columns=["HCPCS_CODE"])
    wanted = sorted({c for c in table.column("HCPCS_CODE").to_pylist() if c is not None})
    fallback = hcpcs.read_fallback(tiny_sandbox / "expected" / "cpt_fallback.csv")
    by_source = {s: counts.get(f"spending.hcpcs_source.{s}", 0) for s in ("api", "fallback_cpt", "fallback_l2", "unknown")}
    assert len(wanted) == counts["spending.distinct_hcpcs"] == sum(by_source.values())
    assert len(fallback) == counts["cpt.fallback_codes"]
    in_fallback = [c for c in wanted if c in fallback]
    invalid = [c for c in wanted if not (hcpcs.normalise_code(c) and hcpcs.is_valid_shape(hcpcs.normalise_code(c)))]
    to_api = [c for c in wanted if c not in fallback and c not in invalid]  # what the API must be asked
    return {"counts": counts, "by_source": by_source, "wanted": wanted, "fallback": fallback,
            "in_fallback": in_fallback, "invalid": invalid, "to_api": to_api}


def api_requests(server) -> list:
    return server.requests(PATH)


def asked_codes(record) -> list[str]:
    q = parse_qs(record.query, keep_blank_values=True)
    assert q["terms"] == [""] and q["count"] == ["500"] and q["ef"] == [",".join(hcpcs.EF_FIELDS)]
    inner = q["q"][0].removeprefix("code:(").removesuffix(")")
    return inner.split(" OR ")


def statuses(pg) -> dict[str, tuple[str, str]]:
    return {code: (status, source) for code, status, source in
            pg.execute("SELECT hcpcs_code, status, source FROM maps.hcpcs_cache").fetchall()}


def assert_final_state(pg, facts) -> None:
    """Every code some source knows is found; the rest not_found (HCPCS-shaped) or invalid."""
    bs = facts["by_source"]
    found = bs["api"] + bs["fallback_cpt"] + bs["fallback_l2"]
    not_found = bs["unknown"] - len(facts["invalid"])
    assert cache.coverage(pg, "hcpcs") == {"found": found, "not_found": not_found, "invalid": len(facts["invalid"])}
    assert cache.pending(pg, "hcpcs") == []
    rows = statuses(pg)
    by = {}
    for status, source in rows.values():
        by[(status, source)] = by.get((status, source), 0) + 1
    # fallback rows: every wanted code in the fallback (CPT-only and Level II-only ones, plus API codes the
    # CMS file also lists); api rows: the API codes the fallback does not hold
    assert by[("found", "fallback")] == len(facts["in_fallback"]) == facts["counts"]["cpt.fallback_codes"]
    assert by[("found", "api")] == found - len(facts["in_fallback"])
    assert by[("not_found", "api")] == not_found
    assert by[("invalid", "input")] == len(facts["invalid"])


def run(pg, client, facts, *, batch_size=BATCH):
    cache.replace_wanted(pg, "hcpcs", [(c,) for c in facts["wanted"]])
    return hcpcs.resolve_pending(pg, client, fallback=facts["fallback"], api_run_id="run-1", batch_size=batch_size)


# ------------------------------------------------------------------------------------------------ units
def test_code_shapes_and_fallback_reader(tmp_path, facts):
    assert hcpcs.normalise_code(" j1100 ") == "J1100"
    assert hcpcs.normalise_code("99213.0") == "99213"
    assert hcpcs.normalise_code("99213-25") is None and hcpcs.normalise_code(None) is None
    assert [c for c in ("99213", "J1100", "0001U", "1234F", "D1234") if hcpcs.is_valid_shape(c)] == \
        ["99213", "J1100", "0001U", "1234F", "D1234"]
    assert not any(hcpcs.is_valid_shape(c) for c in ("XXXXX", "0450", "J11000", "1A234", "H)015"))

    # build_fallback's columns (with source_file), other header spellings and order, duplicates: best row wins
    csv_path = tmp_path / "fb.csv"
    csv_path.write_text("IS NOC,HCPCS,Long Description,Short Description,ADD DT,Obsolete,Extra\n"
                        "N,j1100,Injection dexamethasone,Inj dexamethasone,20040101,Y,x\n"
                        "N,J1100,,Inj dexa,,N,x\n"
                        "Y,99213-25,bad code,bad,,,\n", encoding="cp1252")
    fb = hcpcs.read_fallback(csv_path)
    assert list(fb) == ["J1100"]
    row = fb["J1100"]
    assert (row.short_desc, row.long_desc, row.add_dt, row.obsolete, row.is_noc) == \
        ("Inj dexamethasone", "Injection dexamethasone", "20040101", True, False)
    assert hcpcs.read_fallback(tmp_path / "missing.csv") == {} and hcpcs.read_fallback(None) == {}
    (tmp_path / "nodesc.csv").write_text("hcpcs_code,foo\nJ1100,x\n")
    with pytest.raises(ValueError, match="not a fallback CSV"):
        hcpcs.read_fallback(tmp_path / "nodesc.csv")

    # the sandbox's expected fallback (build_fallback's exact column set)
    some = facts["fallback"][facts["in_fallback"][0]]
    payload = hcpcs.fallback_payload(some)
    assert payload[:2] == [1, [some.code]] and payload[3] == [[some.code, some.short_desc]]
    assert set(payload[2]) == set(hcpcs.EF_FIELDS) and all(len(v) == 1 for v in payload[2].values())
    assert hcpcs.is_fallback_payload(payload) and payload[4]["source"] == "fallback"
    assert hcpcs.ef_values(payload)["long_desc"] == some.long_desc


class StubClient:
    """Answers fixed JSON without HTTP: only for shapes the sandbox never produces."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def url(self, path):
        return "http://stub" + path

    def get_json(self, path, *, params=None):
        self.calls.append(params)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


EF_ONE = {name: ["x"] for name in hcpcs.EF_FIELDS}


@pytest.mark.parametrize("garbage", [
    {"result_count": 1}, [1, ["J1100"], EF_ONE], [1, "J1100", EF_ONE, [["J1100", "x"]]],
    ["1", ["J1100"], EF_ONE, [["J1100", "x"]]], [1, ["J1100"], {"short_desc": ["x"]}, [["J1100", "x"]]],
    [1, ["J1100"], EF_ONE, []], [0, ["J1100"], EF_ONE, [["J1100", "x"]]], None, "<html>busy</html>",
])
def test_resolve_batch_rejects_answers_of_the_wrong_shape(garbage):
    with pytest.raises(hcpcs.HcpcsResponseError, match="not a Clinical Tables v3 answer"):
        hcpcs.resolve_batch(StubClient([garbage]), ["J1100", "J1200"], api_run_id="r")
    with pytest.raises(ValueError):
        hcpcs.resolve_batch(StubClient([]), ["j1100"], api_run_id=None)  # codes must be normalised
    with pytest.raises(ValueError):
        hcpcs.resolve_batch(StubClient([]), ["J1100", "J1200"], api_run_id=None, count=1)  # a batch never exceeds one page


def test_incomplete_page_is_an_error_only_when_requested_codes_are_absent():
    # more matches than returned and J1200 absent: it may be on a later page, so no not_found is claimed
    with pytest.raises(hcpcs.HcpcsResponseError, match="incomplete"):
        hcpcs.resolve_batch(StubClient([[2, ["J1100"], EF_ONE, [["J1100", "x"]]]]), ["J1100", "J1200"], api_run_id="r")
    # every requested code present: extra matches do not matter; the slice is per code
    rows = hcpcs.resolve_batch(StubClient([[3, ["J1100", "J1200"], {k: ["a", "b"] for k in hcpcs.EF_FIELDS},
                                            [["J1100", "a"], ["J1200", "b"]]]]), ["J1200", "J1100"], api_run_id="r")
    assert {r.identifier: r.response_json for r in rows} == {
        "J1100": [1, ["J1100"], {k: ["a"] for k in hcpcs.EF_FIELDS}, [["J1100", "a"]]],
        "J1200": [1, ["J1200"], {k: ["b"] for k in hcpcs.EF_FIELDS}, [["J1200", "b"]]]}


def test_skip_api_seeds_the_fallback_only(maps_db, facts):
    cache.replace_wanted(maps_db, "hcpcs", [(c,) for c in facts["wanted"]])
    stats = hcpcs.resolve_pending(maps_db, None, fallback=facts["fallback"], api_run_id="r")
    assert stats.seeded_from_fallback == len(facts["in_fallback"]) and stats.requests == 0
    assert cache.coverage(maps_db, "hcpcs") == {"found": len(facts["in_fallback"]),
                                               "missing_cache": len(facts["wanted"]) - len(facts["in_fallback"])}


def test_wrong_shape_batch_falls_back_to_singles(maps_db):
    answer = [1, ["J1100"], EF_ONE, [["J1100", "x"]]]
    stub = StubClient([[5, [], None, []], answer, [0, [], None, []], HttpError("boom", source="stub")])
    stats = hcpcs.resolve(maps_db, stub, ["J1100", "j1200", "99999", "0450"], batch_size=10, api_run_id="r",
                          fallback={})
    assert [p["q"] for p in stub.calls] == ["code:(J1100 OR J1200 OR 99999)", "code:(J1100)", "code:(J1200)",
                                            "code:(99999)"]
    assert (stats.requests, stats.batches, stats.failed_batches, stats.single_requests) == (4, 1, 1, 3)
    assert (stats.found, stats.not_found, stats.error, stats.invalid) == (1, 1, 1, 1)
    rows = statuses(maps_db)
    assert rows == {"J1100": ("found", "api"), "j1200": ("not_found", "api"), "99999": ("error", "api"),
                    "0450": ("invalid", "input")}
    msg = maps_db.execute("SELECT error_message FROM maps.hcpcs_cache WHERE hcpcs_code = '99999'").fetchone()[0]
    assert "boom" in msg


# ------------------------------------------------------------------------------------------------ sandbox
def test_full_run_exact_counts_minimal_requests_and_rerun(maps_db, client, sandbox_server, facts):
    stats = run(maps_db, client, facts)
    assert stats.seeded_from_fallback == len(facts["in_fallback"])
    n = len(facts["to_api"])
    assert n > 2 * BATCH  # several batches
    reqs = api_requests(sandbox_server)
    assert len(reqs) == math.ceil(n / BATCH) == stats.requests == stats.batches == hcpcs.expected_requests(n, BATCH)
    assert all(r.status == 200 for r in reqs)
    sent = [c for r in reqs for c in asked_codes(r)]
    assert sorted(sent) == sorted(facts["to_api"])  # each once; fallback codes and invalid shapes never sent
    assert not set(sent) & set(facts["fallback"])
    assert (stats.failed_batches, stats.single_requests, stats.error, stats.from_fallback) == (0, 0, 0, 0)
    assert stats.invalid == len(facts["invalid"])
    assert_final_state(maps_db, facts)

    # payloads: an API slice for one code, with the batch request's url/params/time
    code, url, params, at, payload = maps_db.execute(
        "SELECT hcpcs_code, url, request_params, requested_at_utc, response_json FROM maps.hcpcs_cache "
        "WHERE source = 'api' AND status = 'found' ORDER BY hcpcs_code LIMIT 1").fetchone()
    assert payload[0] == 1 and payload[1] == [code] and set(payload[2]) == set(hcpcs.EF_FIELDS)
    assert payload[3][0][0] == code and len(payload) == 4
    assert url.startswith(sandbox_server.url + PATH + "?") and "q=code" in url and at is not None
    assert code in params["q"] and params["count"] == "500"
    nf = maps_db.execute("SELECT response_json, url FROM maps.hcpcs_cache WHERE status = 'not_found' LIMIT 1").fetchone()
    assert nf[0][:2] == [0, []] and nf[1]
    # an API code also in the fallback: the synthetic payload reads exactly like the API's answer
    both = next(c for c in facts["in_fallback"] if c[0].isalpha() and c[1:].isdigit()
                and (hcpcs.resolve_batch(client, [c], api_run_id=None)[0].status == "found"))
    seeded_payload = maps_db.execute("SELECT response_json FROM maps.hcpcs_cache WHERE hcpcs_code = %s",
                                     (both,)).fetchone()[0]
    api_payload = hcpcs.resolve_batch(client, [both], api_run_id=None)[0].response_json
    assert seeded_payload[:4] == api_payload and hcpcs.is_fallback_payload(seeded_payload)

    # rerun: everything cached, nothing asked
    sandbox_server.clear_requests()
    stats = run(maps_db, client, facts)
    assert (stats.seeded_from_fallback, stats.requests) == (0, 0) and api_requests(sandbox_server) == []
    assert_final_state(maps_db, facts)


def test_not_found_is_checked_against_the_fallback(maps_db, client, sandbox_server, facts):
    """Without seeding, the API is asked for everything valid; codes it does not know but the fallback
    does are written from the fallback (keeping the API request's url), the others not_found."""
    cache.replace_wanted(maps_db, "hcpcs", [(c,) for c in facts["wanted"]])
    stats = hcpcs.resolve(maps_db, client, facts["wanted"], batch_size=BATCH, api_run_id="r", fallback=facts["fallback"])
    bs = facts["by_source"]
    valid = len(facts["wanted"]) - len(facts["invalid"])
    assert len(api_requests(sandbox_server)) == stats.requests == math.ceil(valid / BATCH)
    assert stats.from_fallback == bs["fallback_cpt"] + bs["fallback_l2"]
    assert stats.found == bs["api"]
    assert stats.not_found == bs["unknown"] - len(facts["invalid"])
    assert cache.coverage(maps_db, "hcpcs")["found"] == bs["api"] + bs["fallback_cpt"] + bs["fallback_l2"]
    l2_only = next(c for c in facts["in_fallback"]
                   if statuses(maps_db)[c] == ("found", "fallback") and c[0].isalpha())  # a fallback_l2 code
    payload, url = maps_db.execute("SELECT response_json, url FROM maps.hcpcs_cache WHERE hcpcs_code = %s",
                                   (l2_only,)).fetchone()
    assert hcpcs.is_fallback_payload(payload) and url and l2_only in url


def test_429_burst_with_retry_after_and_a_timeout_end_the_same(maps_db, sandbox_server, facts):
    client = HttpClient(sandbox_server.url, retry=RetryPolicy(attempts=3, backoff=0.01), timeout=(2.0, 0.3))
    sandbox_server.inject("429", path=PATH, count=2, retry_after=1)
    stats = run(maps_db, client, facts)
    reqs = api_requests(sandbox_server)
    n_batches = math.ceil(len(facts["to_api"]) / BATCH)
    # the first batch: 429, 429, then 200; Retry-After (1 s) honoured before each retry
    assert [r.status for r in reqs[:3]] == [429, 429, 200]
    assert reqs[1].ts - reqs[0].ts >= 0.95 and reqs[2].ts - reqs[1].ts >= 0.95
    assert len(reqs) == n_batches + 2 and stats.requests == n_batches
    assert stats.failed_batches == 0
    assert_final_state(maps_db, facts)

    # a request that hangs past the read timeout is retried by the client
    maps_db.execute("TRUNCATE maps.hcpcs_cache")
    maps_db.commit()
    sandbox_server.clear_requests()
    sandbox_server.inject("timeout", path=PATH, count=1, delay=1.0)
    stats = run(maps_db, client, facts)
    deadline = time.monotonic() + 3  # the server logs the hung request only when its handler ends
    while len(api_requests(sandbox_server)) < n_batches + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats.failed_batches == 0 and len(api_requests(sandbox_server)) == n_batches + 1
    assert_final_state(maps_db, facts)
    client.close()


@pytest.mark.parametrize("fault", ["malformed_json", "5xx"])
def test_failed_batch_falls_back_to_single_requests(maps_db, client, sandbox_server, facts, fault):
    """The first batch fails on all 3 attempts (malformed JSON, or 503) and is retried code by code.
    Server requests = ⌈n/b⌉ batch requests + 2 extra attempts of the failed batch + one per code of it."""
    attempts = client.retry.attempts
    sandbox_server.inject(fault, path=PATH, count=attempts)
    stats = run(maps_db, client, facts)
    n = len(facts["to_api"])
    n_batches = math.ceil(n / BATCH)
    first = facts["to_api"][:BATCH]
    assert (stats.batches, stats.failed_batches, stats.single_requests) == (n_batches, 1, len(first))
    assert stats.requests == n_batches + len(first)
    reqs = api_requests(sandbox_server)
    assert len(reqs) == n_batches + (attempts - 1) + len(first)
    singles = [asked_codes(r) for r in reqs[attempts:attempts + len(first)]]
    assert singles == [[c] for c in first]
    assert stats.error == 0
    assert_final_state(maps_db, facts)


def test_a_single_request_that_fails_is_an_error_and_the_rerun_resolves_it(maps_db, client, sandbox_server, facts):
    attempts = client.retry.attempts
    sandbox_server.inject("5xx", path=PATH, count=2 * attempts, status=502)  # the batch, then its first code
    stats = run(maps_db, client, facts)
    failed = facts["to_api"][0]
    assert (stats.failed_batches, stats.error) == (1, 1)
    row = maps_db.execute("SELECT status, error_message, url FROM maps.hcpcs_cache WHERE hcpcs_code = %s",
                          (failed,)).fetchone()
    assert row[0] == "error" and "502" in row[1] and failed in row[2]
    assert cache.pending(maps_db, "hcpcs") == [failed]
    assert cache.coverage(maps_db, "hcpcs")["error"] == 1

    sandbox_server.clear_requests()
    stats = run(maps_db, client, facts)
    reqs = api_requests(sandbox_server)
    assert len(reqs) == 1 and asked_codes(reqs[0]) == [failed] and stats.requests == 1
    assert_final_state(maps_db, facts)


def test_killed_run_keeps_finished_batches(maps_db, sandbox_server, facts):
    """A client that dies after two batches: those batches are in the cache; the rerun asks only the rest."""

    class Dying(HttpClient):
        calls = 0

        def get_json(self, path_or_url, *, params=None):
            Dying.calls += 1
            if Dying.calls > 2:
                raise KeyboardInterrupt
            return super().get_json(path_or_url, params=params)

    dying = Dying(sandbox_server.url, retry=RetryPolicy(attempts=3, backoff=0.01))
    with pytest.raises(KeyboardInterrupt):
        run(maps_db, dying, facts)
    done = [c for c in facts["to_api"] if c not in cache.pending(maps_db, "hcpcs")]
    assert done == facts["to_api"][:2 * BATCH]
    sandbox_server.clear_requests()
    client = HttpClient(sandbox_server.url, retry=RetryPolicy(attempts=3, backoff=0.01))
    stats = run(maps_db, client, facts)
    sent = [c for r in api_requests(sandbox_server) for c in asked_codes(r)]
    assert sent == facts["to_api"][2 * BATCH:] and stats.seeded_from_fallback == 0
    assert_final_state(maps_db, facts)
