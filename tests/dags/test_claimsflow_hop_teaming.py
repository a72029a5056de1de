"""claimsflow_hop_teaming run for real (dag.test) on the sandbox as the download DAG leaves it: every
flagged category at the manifest's count, every input line in the enriched table or the audit, a rerun
replaces a year exactly, the parquet export, the backfill plan."""

from __future__ import annotations

from decimal import Decimal

import localenv
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from claimsflow_airflow.local_run import run_dag, task_states
from include.hop_teaming import export, referral
from include.sandbox.core import Manifest

CHECKS = {"cruft": "CRUFT NPI", "invalid": "INVALID NPI", "not_in_nppes": "NPI NOT IN NPPES",
          "privacy": "PRIVACY THRESHOLD", "tx_below": "TRANSACTIONS BELOW PATIENTS", "duplicate": "DUPLICATE EDGE",
          "self_loop": "SELF LOOP"}


@pytest.fixture
def downloaded(dagbag, sandbox_server, tiny_sandbox, tmp_path, monkeypatch, pg):
    for key, value in localenv.endpoint_connections(base_url=sandbox_server.url).items():
        monkeypatch.setenv(key, value)
    data = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(data))
    run = run_dag(dagbag.get_dag("claimsflow_download"), run_conf={
        "sources": ["medicaid", "nppes", "nucc", "hop_teaming"],
        "hop_teaming_location": str(tiny_sandbox / "restricted" / "hop_teaming")})
    assert run.state == "success", task_states(run)
    pg.execute("DROP SCHEMA IF EXISTS hop CASCADE")
    pg.execute("DROP SCHEMA IF EXISTS hop_build CASCADE")
    pg.commit()
    return data


def scalar(pg, query, *args):
    value = pg.execute(query, args or None).fetchone()[0]
    pg.rollback()
    return value


def digest(pg, table: str, year: int) -> str:
    value = pg.execute(sql.SQL("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {} t WHERE year = %s")
                       .format(sql.Identifier("hop", table)), (year,)).fetchone()[0]
    pg.rollback()
    return value


def test_every_year_checked_enriched_and_published(dagbag, downloaded, tiny_sandbox, pg, monkeypatch):
    # tiny CSV blocks: the export reads a small year in many blocks, each with its own dictionaries,
    # as it reads a real year (the parquet is compared with the view below)
    monkeypatch.setattr(export, "NPI_BLOCK_BYTES", 2048)
    monkeypatch.setattr(export, "EDGE_BLOCK_BYTES", 4096)
    manifest = Manifest.read(tiny_sandbox)
    years = manifest.counts["hop.years"]
    dag = dagbag.get_dag("claimsflow_hop_teaming")
    run = run_dag(dag)
    states = task_states(run)
    assert run.state == "success", states
    assert sum(1 for t in states if t.startswith("load[")) == len(years)

    cruft = set((tiny_sandbox / "restricted" / "hop_teaming" / "expected" / "hop_cruft_npis.txt").read_text().split())
    for year in years:
        c = manifest.counts
        dq = dict(pg.execute("SELECT check_name, rows FROM hop.data_quality WHERE year = %s", (year,)).fetchall())
        pg.rollback()
        for defect, check in CHECKS.items():
            assert dq.get(check, 0) == c[f"hop.{year}.defect.{defect}"], (year, check)
        assert dq["LINES"] == c[f"hop.{year}.rows"]
        assert dq["CLEAN EDGES"] == c[f"hop.{year}.clean_rows"]
        enriched = scalar(pg, "SELECT count(*) FROM hop.edges_enriched WHERE year = %s", year)
        audited = scalar(pg, "SELECT count(*) FROM hop.audit WHERE year = %s", year)
        assert enriched == c[f"hop.{year}.clean_rows"]
        assert enriched + audited == c[f"hop.{year}.rows"]
        # every line of the file (2 .. rows + 1) in exactly one of the two
        lines = scalar(pg, """SELECT count(DISTINCT line_number) FROM (
            SELECT line_number FROM hop.edges_enriched WHERE year = %s
            UNION ALL SELECT line_number FROM hop.audit WHERE year = %s) u
            WHERE line_number BETWEEN 2 AND %s""", year, year, c[f"hop.{year}.rows"] + 1)
        assert lines == c[f"hop.{year}.rows"]
        found = {r[0] for r in pg.execute(
            "SELECT DISTINCT n::text FROM hop.edges_enriched, LATERAL (VALUES (from_npi), (to_npi)) v(n) WHERE year = %s",
            (year,))}
        pg.rollback()
        assert not (found & cruft), "no cruft NPI survives"
        # enrichment: every clean edge has both ends' NPPES and NUCC facts, a score in [0, 1] and its rule
        assert scalar(pg, """SELECT count(*) FROM hop.edges_enriched WHERE year = %s AND (from_entity_type IS NULL
                             OR to_entity_type IS NULL OR from_classification IS NULL OR to_classification IS NULL
                             OR referral_score NOT BETWEEN 0 AND 1 OR referral_rule IS NULL)""", year) == 0
        assert scalar(pg, "SELECT count(*) FROM hop.edges_enriched WHERE year = %s AND from_billing_paid IS NOT NULL",
                      year) > 0
        assert scalar(pg, "SELECT sum(out_degree) FROM hop.npi_summary WHERE year = %s", year) == enriched
        # the roles computed once per NPI give what the per-edge rules give (referral.score_sql's own form)
        recomputed = sql.SQL("SELECT count(*) FROM (SELECT e.referral_score AS s0, e.referral_rule AS r0, "
                             "e.from_role AS f0, e.to_role AS t0, {} FROM hop.edges_enriched e WHERE e.year = %s) x "
                             "WHERE (s0, r0, f0, t0) IS DISTINCT FROM (referral_score, referral_rule, from_role, to_role)"
                             ).format(referral.score_sql(referral.load_rules(), alias="e"))
        assert scalar(pg, recomputed, year) == 0
        parquet = downloaded / "output" / "hop_teaming" / f"edges_enriched_{year}.parquet"
        assert pq.ParquetFile(parquet).metadata.num_rows == enriched
        # the export is the view, row for row and column for column
        exported = pq.read_table(parquet)
        view_rows = pg.execute(sql.SQL("SELECT {} FROM hop.edges_enriched WHERE year = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, exported.column_names))), (year,)).fetchall()
        pg.rollback()
        as_python = sorted(tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in view_rows)
        assert sorted(zip(*(exported.column(c).to_pylist() for c in exported.column_names), strict=True)) == as_python
        assert [c for c in exported.column_names] == [r[0] for r in pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'hop' "
            "AND table_name = 'edges_enriched' ORDER BY ordinal_position")]
        pg.rollback()

    # a rerun of one year replaces it exactly; the other years are untouched
    year, other = years[-1], years[0]
    before = {t: digest(pg, t, y) for t in ("edges_enriched", "audit", "npi_summary") for y in (year, other)}
    again = run_dag(dag, run_conf={"year": year})
    assert again.state == "success", task_states(again)
    assert {t: digest(pg, t, y) for t in ("edges_enriched", "audit", "npi_summary") for y in (year, other)} == before
    assert scalar(pg, "SELECT count(*) FROM hop.data_quality WHERE year = %s", year) == len(dq)
    assert scalar(pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hop_build'") == 0, "no build table left"
    # the planner has statistics for the published parents (which autovacuum never analyses) and the new
    # edges partition, so a query on hop.edges_enriched is planned from real row counts
    for table, column, inherited in (("edges", "to_npi", True), ("npis", "npi", True), ("npi_summary", "npi", True),
                                     (f"edges_{year}", "to_npi", False)):
        assert scalar(pg, "SELECT count(*) FROM pg_stats WHERE schemaname = 'hop' AND tablename = %s AND attname = %s "
                          "AND inherited = %s", table, column, inherited) == 1, table


def test_a_year_without_a_zip_fails_clearly(dagbag, downloaded):
    run = run_dag(dagbag.get_dag("claimsflow_hop_teaming"), run_conf={"year": 2015})
    assert run.state == "failed"
    assert task_states(run)["load[0]"] == "failed"


def test_backfill_over_a_year_range_makes_one_run_per_year(backfill_plan):
    assert backfill_plan("claimsflow_hop_teaming", "2019-01-01", "2022-12-31") == ["2019", "2020", "2021", "2022"]


def test_years_follow_the_param_or_the_logical_date():
    import pendulum

    from claimsflow_airflow import hop_teaming_tasks

    class Run:
        def __init__(self, run_type):
            self.run_type = run_type

    assert hop_teaming_tasks.years({"params": {"year": 2019}, "dag_run": Run("manual")}) == [2019]
    ctx = {"params": {"year": None}, "logical_date": pendulum.datetime(2021, 1, 1), "dag_run": Run("backfill")}
    assert hop_teaming_tasks.years(ctx) == [2021]
