"""The load manifest in claimsflow_meta."""

from __future__ import annotations

import uuid

import pytest

from include.common.errors import DatabaseError
from include.meta.manifest import RunInfo, ensure_meta_schema, fail_load, finish_load, latest_done, start_load

RUN = RunInfo(dag_id="claimsflow_test", run_id="manual__1", task_id="load")


@pytest.fixture
def meta(pg):
    ensure_meta_schema(pg)
    ensure_meta_schema(pg)  # idempotent
    return pg


def _status(pg, load_id):
    return pg.execute(
        "SELECT status, row_count, error_message FROM claimsflow_meta.load_manifest WHERE load_id = %s", (load_id,)
    ).fetchone()


def test_a_load_is_running_then_done(meta):
    target = f"medicare_raw.t_{uuid.uuid4().hex[:8]}"
    load_id = start_load(meta, RUN, dataset="medicare_raw", target=target, source_path="/x/a.dat", source_bytes=10)
    assert _status(meta, load_id) == ("running", None, None)
    finish_load(meta, load_id, 42, {"columns": 3})
    assert _status(meta, load_id) == ("done", 42, None)
    done = latest_done(meta, target)
    assert done["load_id"] == load_id and done["row_count"] == 42 and done["details"] == {"columns": 3}
    assert done["dag_id"] == "claimsflow_test" and done["source_path"] == "/x/a.dat"


def test_a_failed_load_keeps_its_error_and_rolls_back_the_work(meta):
    target = f"maps.t_{uuid.uuid4().hex[:8]}"
    load_id = start_load(meta, RUN, dataset="maps", target=target)
    meta.execute("CREATE TEMP TABLE half_done (x int)")
    fail_load(meta, load_id, ValueError("a.dat, line 7: record is 12 bytes, expected 30"))
    assert _status(meta, load_id) == ("failed", None, "a.dat, line 7: record is 12 bytes, expected 30")
    assert meta.execute("SELECT to_regclass('pg_temp.half_done')").fetchone()[0] is None
    assert latest_done(meta, target) is None


def test_a_new_load_supersedes_one_left_running_by_a_dead_worker(meta):
    target = f"nppes.t_{uuid.uuid4().hex[:8]}"
    stale = start_load(meta, RUN, dataset="nppes", target=target)
    fresh = start_load(meta, RUN, dataset="nppes", target=target)
    status, _, error = _status(meta, stale)
    assert status == "failed" and "superseded" in error
    with pytest.raises(DatabaseError, match=f"load {stale} is not running"):
        finish_load(meta, stale, 1)
    finish_load(meta, fresh, 5)
    assert latest_done(meta, target)["load_id"] == fresh
