"""claimsflow_medicare_ingest run for real (dag.test) on the sandbox's fixed-width years."""

from __future__ import annotations

import json

import pytest
from psycopg import sql

from claimsflow_airflow.local_run import run_dag, task_states


@pytest.fixture
def clean_raw(pg):
    pg.execute("DROP SCHEMA IF EXISTS medicare_raw CASCADE")
    pg.execute("DELETE FROM claimsflow_meta.load_manifest WHERE dataset = 'medicare_raw'")
    pg.commit()
    return pg


def test_a_year_is_ingested_then_skipped_and_an_empty_year_skips_cleanly(dagbag, tiny_sandbox, clean_raw):
    pg = clean_raw
    dag = dagbag.get_dag("claimsflow_medicare_ingest")
    folder = str(tiny_sandbox / "restricted" / "medicare")
    run = run_dag(dag, run_conf={"year": 2015, "input_folder": folder})
    states = task_states(run)
    assert run.state == "success", states
    assert sum(1 for t in states if t.startswith("load[")) == 2
    expected = json.loads((tiny_sandbox / "expected" / "medicare_2015.json").read_text())
    for kind in ("mbsf_abcd_summary", "medpar_all_file"):
        table = sql.Identifier("medicare_raw", f"{kind}_2015")
        assert pg.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0] == \
            expected["files"][kind]["loaded"]
    layouts = pg.execute("SELECT count(*) FROM claimsflow_meta.medicare_layouts WHERE year = 2015").fetchone()[0]
    pg.rollback()
    assert layouts == 2

    again = run_dag(dag, run_conf={"year": 2015, "input_folder": folder})
    assert again.state == "success", task_states(again)
    loads = pg.execute("SELECT count(*) FROM claimsflow_meta.load_manifest WHERE dataset = 'medicare_raw' "
                       "AND status = 'done'").fetchone()[0]
    pg.rollback()
    assert loads == 2, "the second run loads nothing"

    empty = run_dag(dag, run_conf={"year": 2017, "input_folder": folder})
    assert empty.state == "success"
    assert task_states(empty)["discover"] == "skipped"


def test_the_run_year_follows_the_logical_date(dagbag):
    import pendulum

    from claimsflow_airflow.medicare_tasks import run_year

    assert run_year({"params": {"year": None}, "logical_date": pendulum.datetime(2012, 1, 1)}) == 2012
    assert run_year({"params": {"year": 2016}, "logical_date": pendulum.datetime(2012, 1, 1)}) == 2016
    dag = dagbag.get_dag("claimsflow_medicare_ingest")
    assert dag.start_date.year == 1999 and dag.schedule == "@yearly"


def test_backfill_over_a_year_range_makes_one_run_per_year():
    """The CLI's own dry run of `airflow backfill create` over 2011-2015 plans exactly one run a year."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "dags", "reserialize"], check=True, capture_output=True, env=os.environ, timeout=300)
    out = subprocess.run([airflow, "backfill", "create", "--dag-id", "claimsflow_medicare_ingest", "--from-date",
                          "2011-01-01", "--to-date", "2015-12-31", "--dry-run"], check=True, capture_output=True,
                         text=True, env=os.environ, timeout=300).stdout
    planned = re.findall(r"^\|\s*(\d{4})-01-01 00:00:00\+00:00", out, flags=re.MULTILINE)  # the table's rows
    assert planned == ["2011", "2012", "2013", "2014", "2015"]


def test_a_sas_year_is_ingested(dagbag, tiny_sandbox, clean_raw):
    pg = clean_raw
    folder = str(tiny_sandbox / "restricted" / "medicare")
    run = run_dag(dagbag.get_dag("claimsflow_medicare_ingest"), run_conf={"year": 2005, "input_folder": folder})
    states = task_states(run)
    assert run.state == "success", states
    assert states["discover"] == "skipped" and sum(1 for t in states if t.startswith("load_sas[")) == 2
    expected = json.loads((tiny_sandbox / "expected" / "medicare_2005.json").read_text())
    for table, kind in (("mcr_bene_2005", "denominator"), ("mcr_ip_2005", "inpatient")):
        n = pg.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("medicare_raw", table))).fetchone()[0]
        assert n == expected["files"][kind]["records"]
    pg.rollback()
