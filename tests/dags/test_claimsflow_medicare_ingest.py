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


def test_backfill_over_a_year_range_makes_one_run_per_year(backfill_plan):
    """The CLI's own dry run of `airflow backfill create` over 2011-2015 plans exactly one run a year."""
    assert backfill_plan("claimsflow_medicare_ingest", "2011-01-01", "2015-12-31") == ["2011", "2012", "2013", "2014",
                                                                                       "2015"]


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


def _one_fts_year(tiny_sandbox, dest, base: str | None = None):
    """A medicare folder holding only 2015's mbsf_abcd_summary FTS and .dat (renamed to `base`): one load."""
    import shutil

    from include.fts_parsers.fts import find_fts_files

    (src,) = [f for f in find_fts_files(tiny_sandbox / "restricted" / "medicare" / "2015")
              if f.base.startswith("mbsf_abcd_summary")]
    folder = dest / "medicare" / "2015"
    folder.mkdir(parents=True)
    name = base or src.base
    shutil.copy(src.fts, folder / f"{name}.fts")
    shutil.copy(src.data[0], folder / f"{name}.dat")
    return folder / f"{name}.fts", folder / f"{name}.dat"


def test_a_value_in_another_encoding_is_a_reject_naming_file_record_and_column(dagbag, tiny_sandbox, tmp_path,
                                                                               clean_raw):
    """A CHAR value written in UTF-8 (the file is declared ASCII): not loaded as mojibake, not a failed
    run, but a counted reject with the file, the record, the column and the bytes."""
    from include.fts_parsers.fixed_width import read_fwf
    from include.fts_parsers.fts import parse_fts

    pg = clean_raw
    fts, dat = _one_fts_year(tiny_sandbox, tmp_path)
    layout = parse_fts(fts)
    column = next(c for c in layout.columns if c.type == "CHAR" and c.width >= 3 and c.name != "BENE_ID")
    record = next(iter(read_fwf(dat, layout.columns, layout.record_length))).record_numbers[0].as_py()  # a good one
    lines = dat.read_bytes().split(b"\n")
    line = bytearray(lines[record - 1])
    line[column.offset:column.offset + column.width] = ("é".encode() + b"s").ljust(column.width)  # é: 2 bytes
    lines[record - 1] = bytes(line)
    dat.write_bytes(b"\n".join(lines))

    run = run_dag(dagbag.get_dag("claimsflow_medicare_ingest"),
                  run_conf={"year": 2015, "input_folder": str(tmp_path / "medicare")})
    assert run.state == "success", task_states(run)
    want = json.loads((tiny_sandbox / "expected" / "medicare_2015.json").read_text())["files"]["mbsf_abcd_summary"]
    loaded = pg.execute("SELECT count(*) FROM medicare_raw.mbsf_abcd_summary_2015").fetchone()[0]
    assert loaded == want["loaded"] - 1
    rejects = pg.execute("SELECT source_file, record_number, kind, reason, raw FROM medicare_raw.ingest_rejects "
                         "WHERE table_name = 'mbsf_abcd_summary_2015' ORDER BY record_number").fetchall()
    pg.rollback()
    assert len(rejects) == sum(want["rejects"].values()) + 1
    assert (dat.name, record, "non_ascii", f"non_ascii:{column.name}:\\xc3\\xa9s", bytes(line)) in [
        (r[0], r[1], r[2], r[3], bytes(r[4])) for r in rejects]


@pytest.fixture
def sentinels(clean_raw):
    """Tables named `x` in public and medicare_raw (what the odd file name below talks of dropping),
    removed afterwards with what the test loaded (the layout row would count in other tests' year)."""
    pg = clean_raw
    pg.execute("CREATE SCHEMA medicare_raw")
    for schema in ("public", "medicare_raw"):
        pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, "x")))
        pg.execute(sql.SQL("CREATE TABLE {} AS SELECT 1 AS kept").format(sql.Identifier(schema, "x")))
    pg.commit()
    yield pg
    pg.rollback()
    pg.execute("DROP TABLE IF EXISTS public.x")
    pg.execute("DROP SCHEMA IF EXISTS medicare_raw CASCADE")
    pg.execute("DELETE FROM claimsflow_meta.medicare_layouts WHERE table_name = 'mbsf_abcd_drop_table_x_2015'")
    pg.commit()


def test_a_file_name_that_is_no_identifier_loads_under_a_derived_name_and_harms_nothing(dagbag, tiny_sandbox,
                                                                                        tmp_path, sentinels):
    """`mbsf abcd'; drop table x; --"_2015.fts`: the table name is derived (letters, digits, _), the file
    name itself only ever reaches SQL as a literal value; nothing else is touched."""
    pg = sentinels
    base = "mbsf abcd'; drop table x; --\"_2015"
    fts, dat = _one_fts_year(tiny_sandbox, tmp_path, base)

    run = run_dag(dagbag.get_dag("claimsflow_medicare_ingest"),
                  run_conf={"year": 2015, "input_folder": str(tmp_path / "medicare")})
    assert run.state == "success", task_states(run)
    want = json.loads((tiny_sandbox / "expected" / "medicare_2015.json").read_text())["files"]["mbsf_abcd_summary"]
    derived = "mbsf_abcd_drop_table_x_2015"
    tables = pg.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'medicare_raw' "
                        "ORDER BY 1").fetchall()
    assert [t for (t,) in tables] == ["ingest_rejects", derived, "x"]
    files = pg.execute(sql.SQL("SELECT source_file, count(*) FROM {} GROUP BY 1").format(
        sql.Identifier("medicare_raw", derived))).fetchall()
    assert files == [(dat.name, want["loaded"])], "the odd file name is stored as it is"
    rejects = pg.execute("SELECT DISTINCT source_file, count(*) OVER () FROM medicare_raw.ingest_rejects "
                         "WHERE table_name = %s", (derived,)).fetchall()
    assert rejects == [(dat.name, sum(want["rejects"].values()))]
    layout = pg.execute("SELECT fts_path FROM claimsflow_meta.medicare_layouts WHERE table_name = %s",
                        (derived,)).fetchone()
    assert layout == (str(fts),)
    for schema in ("public", "medicare_raw"):
        assert pg.execute(sql.SQL("SELECT kept FROM {}").format(sql.Identifier(schema, "x"))).fetchall() == [(1,)]
