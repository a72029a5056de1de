"""claimsflow_medicare_processing run for real (dag.test) over sandbox years ingested into medicare_raw:
every planted defect in the right place with the right reason and exact counts, QC numbers against
counts computed here, a third year added and rerun, identical tables on a rerun, grants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg import sql

from claimsflow_airflow.local_run import run_dag, task_states
from include.fts_parsers.fts import find_fts_files, parse_fts
from include.medicare import ingest

MODEL_TABLES = ("medicare.beneficiaries", "medicare.enrollments", "medicare.admissions", "medicare_audit.admissions",
                "medicare_audit.enrollments", "medicare._ps")


def ingest_year(pg, sandbox: Path, year: int) -> None:
    folder = sandbox / "restricted" / "medicare" / str(year)
    ingest.ensure_schema(pg)
    if year >= 2011:
        for f in find_fts_files(folder):
            ingest.load_fwf(pg, f, parse_fts(f.fts))
    else:
        for path in ingest.find_sas_files(folder):
            ingest.load_sas(pg, path, year)


def expected(sandbox: Path, year: int) -> dict:
    return json.loads((sandbox / "expected" / f"medicare_{year}.json").read_text())


def scalar(pg, query, *args):
    value = pg.execute(query, args or None).fetchone()[0]
    pg.rollback()  # no open transaction left behind while the DAG swaps schemas
    return value


def per_year(pg, query: str, *args) -> dict:
    rows = pg.execute(query, args or None).fetchall()
    pg.rollback()
    return {r[0]: r[1] if len(r) == 2 else r[1:] for r in rows}


def count_of(pg, table: str) -> int:
    return scalar(pg, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split("."))))


def table_digest(pg, table: str) -> str:
    schema, name = table.split(".")
    cols = [r[0] for r in pg.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND data_type NOT IN ('USER-DEFINED') ORDER BY ordinal_position", (schema, name)).fetchall()]
    stmt = sql.SQL("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (SELECT {} FROM {}) t").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(schema, name))
    value = pg.execute(stmt).fetchone()[0]
    pg.rollback()
    return value


@pytest.fixture
def clean_medicare(pg):
    for schema in ("medicare_raw", "medicare", "medicare_audit", "medicare_qc",
                   "medicare__next", "medicare_audit__next", "medicare_qc__next"):
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    pg.execute("DELETE FROM claimsflow_meta.load_manifest WHERE dataset = 'medicare_raw'")
    pg.commit()
    return pg


def check_year(pg, sandbox: Path, year: int) -> None:
    exp = expected(sandbox, year)
    adm, summ = exp["admissions"], exp["summary"]
    audit = per_year(pg, "SELECT reason, count(*) FROM medicare_audit.admissions WHERE year = %s GROUP BY 1", year)
    valid = scalar(pg, "SELECT count(*) FROM medicare.admissions WHERE year = %s", year)
    assert valid == adm["valid"]
    assert audit == {"DUPLICATE": adm["duplicate"], "FOREIGN KEY": adm["foreign_key"], "PRIMARY KEY": adm["primary_key"]}
    # every input record in exactly one of the two tables
    assert valid + sum(audit.values()) == adm["records"]
    keys = scalar(pg, """SELECT count(*) FROM (
        SELECT source_file, record_number FROM medicare.admissions WHERE year = %s
        UNION SELECT source_file, record_number FROM medicare_audit.admissions WHERE year = %s) k""", year, year)
    assert keys == adm["records"]

    # the planted defects, by beneficiary, with their reason
    ex = exp["defect_examples"]
    for bene in ex.get("adm_dangling", []):
        assert scalar(pg, "SELECT array_agg(DISTINCT reason) FROM medicare_audit.admissions WHERE bene_id = %s "
                          "AND year = %s", bene, year) == ["FOREIGN KEY"]
    for bene in ex.get("adm_missing_date", []):
        assert scalar(pg, "SELECT count(*) FROM medicare_audit.admissions WHERE bene_id = %s AND year = %s "
                          "AND reason = 'PRIMARY KEY' AND admission_date IS NULL", bene, year) >= 1
    for bene in ex.get("adm_state_mismatch", []):
        assert scalar(pg, "SELECT count(*) FROM medicare_audit.admissions WHERE bene_id = %s AND year = %s "
                          "AND reason = 'FOREIGN KEY'", bene, year) >= 1
    for bene in ex.get("adm_duplicate", []):
        assert scalar(pg, "SELECT count(*) FROM medicare_audit.admissions WHERE bene_id = %s AND year = %s "
                          "AND reason = 'DUPLICATE' AND kept_file IS NOT NULL", bene, year) >= 1
        assert scalar(pg, "SELECT count(*) FROM medicare.admissions WHERE bene_id = %s AND year = %s "
                          "AND quality = 'DUPLICATE'", bene, year) >= 1

    # enrollment records: all of them in _ps, the failing ones audited with their reason
    assert scalar(pg, "SELECT count(*) FROM medicare._ps WHERE year = %s", year) == summ["records"]
    assert scalar(pg, "SELECT count(*) FROM medicare.enrollments WHERE year = %s", year) == summ["enrollments"]
    enrl_audit = per_year(pg, "SELECT reason, count(*) FROM medicare_audit.enrollments WHERE year = %s GROUP BY 1", year)
    assert enrl_audit == {"PRIMARY KEY": summ["invalid_state_records"], "DUPLICATE": summ["duplicate_records"],
                          "AGE OUT OF RANGE": summ["age_out_of_range"]}
    for bene in ex.get("enrl_invalid_state", []):
        assert scalar(pg, "SELECT count(*) FROM medicare_audit.enrollments WHERE bene_id = %s AND year = %s "
                          "AND reason = 'PRIMARY KEY' AND ssa2 = '99'", bene, year) >= 1
    for bene in ex.get("enrl_two_states", []):
        states = scalar(pg, "SELECT count(*) FROM medicare.enrollments WHERE bene_id = %s AND year = %s "
                            "AND state_count = 2", bene, year)
        invalid = scalar(pg, "SELECT count(*) FROM medicare_audit.enrollments WHERE bene_id = %s AND year = %s "
                             "AND reason = 'PRIMARY KEY'", bene, year)
        assert states == 2 or invalid, f"{bene} moved in {year}: two enrollments, unless one record had no state"
    # the death year, counted here from the raw conditioned records
    assert scalar(pg, "SELECT count(*) FILTER (WHERE died) FROM medicare.enrollments WHERE year = %s", year) == scalar(
        pg, "SELECT count(DISTINCT (bene_id, state)) FROM medicare._ps WHERE year = %s AND state IS NOT NULL "
            "AND extract(year FROM dod) = year", year)

    # every summary record got its dates (SAS numbers, YYYYMMDD numbers, DATE columns) and a 4-digit year
    assert scalar(pg, "SELECT count(*) FROM medicare._ps WHERE year = %s AND (dob IS NULL OR zip IS NULL)", year) == 0
    assert scalar(pg, "SELECT count(*) FROM medicare.admissions WHERE year = %s "
                      "AND extract(year FROM admission_date) <> %s", year, year) == 0

    # QC tables against the counts above
    qc_adm = per_year(pg, "SELECT reason, sum(numrecords)::int FROM medicare_qc.qc_admissions WHERE year = %s GROUP BY 1",
                      year)
    assert qc_adm == {"OK": adm["valid"], **{k: v for k, v in audit.items()}}
    qc_enrl = scalar(pg, "SELECT sum(numrecords)::int FROM medicare_qc.qc_enrollments WHERE year = %s", year)
    assert qc_enrl == summ["enrollments"]
    distinct = scalar(pg, "SELECT count(DISTINCT bene_id) FROM medicare.enrollments WHERE year = %s", year)
    approx = scalar(pg, "SELECT (# hll_union_agg(bene_hll))::int FROM medicare_qc.qc_enrollments WHERE year = %s", year)
    assert abs(approx - distinct) <= 0.02 * distinct
    metrics = scalar(pg, "SELECT array[pct_valid, pct_foreign_key, pct_duplicate, pct_missing_data] "
                         "FROM medicare_qc.qc_admissions_metrics WHERE year = %s AND rollup_level = 1", year)
    records = adm["records"]
    assert [float(m) for m in metrics] == [round(n * 100 / records, 2) for n in
                                            (adm["valid"], adm["foreign_key"], adm["duplicate"], adm["primary_key"])]


def check_beneficiaries(pg, sandbox: Path, years: list[int]) -> None:
    raw_tables = [r[0] for r in pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'medicare_raw' "
        "AND (table_name LIKE 'mbsf_ab%%' OR table_name LIKE 'mcr_bene_%%')").fetchall()]
    union = sql.SQL(" UNION ").join(sql.SQL("SELECT bene_id FROM {}").format(sql.Identifier("medicare_raw", t))
                                    for t in raw_tables)
    assert scalar(pg, "SELECT count(*) FROM medicare.beneficiaries") == \
        scalar(pg, sql.SQL("SELECT count(*) FROM ({}) u").format(union))
    # a dob typo shows as an ambiguous dob when the beneficiary has records in another loaded year
    typos = {b for y in years for b in expected(sandbox, y)["identity_typos"]["dob"]}
    ambiguous = {r[0] for r in pg.execute("SELECT bene_id FROM medicare.beneficiaries WHERE dob_latest IS NOT NULL")}
    several = {r[0] for r in pg.execute(
        "SELECT bene_id FROM medicare._ps GROUP BY bene_id HAVING count(DISTINCT year) > 1")}
    pg.rollback()
    assert ambiguous == typos & several
    qc_ambiguous = scalar(pg, "SELECT count(*) FROM medicare.beneficiaries b WHERE dob_latest IS NOT NULL")
    assert qc_ambiguous == len(typos & several)


def test_processing_over_two_years_then_a_third(dagbag, sandbox_copy, clean_medicare, tmp_path):
    pg = clean_medicare
    dag = dagbag.get_dag("claimsflow_medicare_processing")
    conf = {"crosswalk_folder": str(sandbox_copy / "restricted" / "medicare_crosswalks"),
            "report_folder": str(tmp_path / "qc"), "read_only_role": "claimsflow_reader"}
    for year in (2005, 2011):  # a SAS year with 2-digit years and YYYYMMDD numbers, a fixed-width year
        ingest_year(pg, sandbox_copy, year)

    run = run_dag(dag, run_conf=conf)
    assert run.state == "success", task_states(run)
    for year in (2005, 2011):
        check_year(pg, sandbox_copy, year)
    check_beneficiaries(pg, sandbox_copy, [2005, 2011])
    reports = list((tmp_path / "qc").glob("*.html"))
    assert len(reports) == 1 and "2011" in reports[0].read_text()
    assert scalar(pg, "SELECT has_table_privilege('claimsflow_reader', 'medicare.enrollments', 'SELECT')")
    assert not scalar(pg, "SELECT has_table_privilege('claimsflow_reader', 'medicare.enrollments', 'INSERT')")
    before = {t: count_of(pg, t) for t in MODEL_TABLES}
    digests = {t: table_digest(pg, t) for t in MODEL_TABLES}

    # a rerun rebuilds identical tables
    again = run_dag(dag, run_conf=conf)
    assert again.state == "success", task_states(again)
    assert {t: table_digest(pg, t) for t in MODEL_TABLES} == digests

    # a third year: everything rebuilt, counts grow by exactly that year's
    ingest_year(pg, sandbox_copy, 2010)
    third = run_dag(dag, run_conf=conf)
    assert third.state == "success", task_states(third)
    for year in (2005, 2010, 2011):
        check_year(pg, sandbox_copy, year)
    check_beneficiaries(pg, sandbox_copy, [2005, 2010, 2011])
    exp = expected(sandbox_copy, 2010)
    grow = {"medicare.enrollments": exp["summary"]["enrollments"], "medicare._ps": exp["summary"]["records"],
            "medicare.admissions": exp["admissions"]["valid"],
            "medicare_audit.admissions": exp["admissions"]["records"] - exp["admissions"]["valid"]}
    for table, n in grow.items():
        assert count_of(pg, table) == before[table] + n, table
    assert scalar(pg, "SELECT count(*) FROM medicare.enrollments WHERE year IN (2005, 2011)") == \
        before["medicare.enrollments"], "the earlier years are unchanged"
    assert scalar(pg, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'medicare%%\\_\\_%%'") == 0, \
        "no build schema left behind"


def test_a_missing_crosswalk_folder_fails_clearly_and_keeps_the_published_model(dagbag, sandbox_copy, clean_medicare,
                                                                                tmp_path):
    pg = clean_medicare
    dag = dagbag.get_dag("claimsflow_medicare_processing")
    ingest_year(pg, sandbox_copy, 2011)
    good = {"crosswalk_folder": str(sandbox_copy / "restricted" / "medicare_crosswalks"),
            "report_folder": str(tmp_path / "qc"), "read_only_role": ""}
    assert run_dag(dag, run_conf=good).state == "success"
    enrollments = scalar(pg, "SELECT count(*) FROM medicare.enrollments")

    bad = run_dag(dag, run_conf={**good, "crosswalk_folder": str(tmp_path / "nowhere")})
    assert bad.state == "failed"
    assert task_states(bad)["prepare"] == "failed"
    assert scalar(pg, "SELECT count(*) FROM medicare.enrollments") == enrollments, "the published model is untouched"
