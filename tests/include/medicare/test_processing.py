"""The processing pieces without Airflow: the SQL helper functions (dates, years, ZIPs), the federated
view over a raw table of another era (character dates, numeric ZIP, 2-digit text years, one 12-character
HMO string), and crosswalk errors naming file and line."""

from __future__ import annotations

import datetime as dt

import pytest
from psycopg import sql

from include.medicare import ingest, processing
from include.medicare.uniform import match_uniform

BUILD = processing.build_schemas()["medicare"]


@pytest.fixture
def built(pg, tiny_sandbox):
    """Build schemas prepared with the sandbox's crosswalks; dropped afterwards."""
    processing.prepare(pg, tiny_sandbox / "restricted" / "medicare_crosswalks")
    yield pg
    pg.rollback()
    for schema in processing.build_schemas().values():
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    pg.execute("DROP TABLE IF EXISTS medicare_raw.mcr_bene_2003")
    pg.commit()


def fn(pg, name: str, *args):
    call = sql.SQL("SELECT {}({})").format(sql.Identifier(BUILD, name), sql.SQL(", ").join(sql.Placeholder() * len(args)))
    return pg.execute(call, args).fetchone()[0]


def test_character_and_numeric_dates(built):
    pg = built
    assert fn(pg, "parse_date", "20110315") == dt.date(2011, 3, 15)
    assert fn(pg, "parse_date", " 2011-03-15 ") == dt.date(2011, 3, 15)
    assert fn(pg, "parse_date", "15MAR2011") == dt.date(2011, 3, 15)
    assert fn(pg, "parse_date", "15mar2011") == dt.date(2011, 3, 15)
    assert fn(pg, "parse_date", "2011074") == dt.date(2011, 3, 15)  # Julian YYYYDDD
    for bad in ("20110231", "00000000", "", "   ", "2011-13-01", "31FOO2011", "2011400", "garbage"):
        assert fn(pg, "parse_date", bad) is None, bad
    assert fn(pg, "sas_date", 0.0) == dt.date(1960, 1, 1)
    assert fn(pg, "sas_date", 18701.0) == dt.date(2011, 3, 15)
    assert fn(pg, "sas_date", -29219.0) == dt.date(1880, 1, 1)
    assert fn(pg, "yyyymmdd_date", 20110315.0) == dt.date(2011, 3, 15)
    assert fn(pg, "yyyymmdd_date", 0.0) is None
    assert fn(pg, "yyyymmdd_date", 20110231.0) is None


def test_years_and_zips(built):
    pg = built
    assert [fn(pg, "year4", y, 2005) for y in (5, 99, 49, 50, 2011, None)] == [2005, 1999, 2049, 1950, 2011, 2005]
    assert fn(pg, "zip5", "123456789") == 12345 and fn(pg, "zip4", "123456789") == 6789
    assert fn(pg, "zip5", "02134-0001") == 2134 and fn(pg, "zip4", "02134-0001") == 1
    assert fn(pg, "zip5", "02134") == 2134 and fn(pg, "zip4", "02134") is None
    assert fn(pg, "zip5", "ABCDE") is None and fn(pg, "zip5", "1234") is None
    # a 9-digit ZIP stored as a number lost its leading zero: 012345678 -> 12345678
    assert fn(pg, "zip5", 12345678.0) == 1234 and fn(pg, "zip4", 12345678.0) == 5678
    assert fn(pg, "zip5", 2134.0) == 2134 and fn(pg, "zip4", 2134.0) is None


def test_a_raw_table_of_another_era_is_conditioned(built):
    """Character dates, a numeric 9-digit ZIP, a 2-digit character year, one 12-character HMO string,
    an unknown state code: the union view handles them by the column's type."""
    pg = built
    columns = [("qid", "varchar(15)"), ("enrolyr", "varchar(2)"), ("ssa_state", "varchar(2)"), ("ssa_county", "varchar(3)"),
               ("zipcode", "double precision"), ("bene_dob", "varchar(9)"), ("death_dt", "varchar(8)"),
               ("sex", "varchar(1)"), ("race", "varchar(1)"), ("age", "double precision"), ("hmoind", "varchar(12)"),
               ("hmocovg", "double precision")]
    ingest.ensure_schema(pg)
    uniform = match_uniform([c for c, _ in columns])
    pg.execute(ingest.table_ddl("medicare_raw", "mcr_bene_2003", columns, uniform, file_year=2003))
    pg.execute("""INSERT INTO medicare_raw.mcr_bene_2003 (source_file, record_number, qid, enrolyr, ssa_state,
                  ssa_county, zipcode, bene_dob, death_dt, sex, race, age, hmoind, hmocovg) VALUES
                  ('d.sas7bdat', 1, 'a1', '03', '05', '010', 12345678, '15MAR1938', '20030704', '1', '1', 65, 'CCCCCC000000', 6),
                  ('d.sas7bdat', 2, 'a2', '3', '99', '010', 90210, '19380315', '00000000', '2', '2', 65, NULL, NULL)""")
    pg.commit()
    processing.build_view(pg, "ps")
    rows = pg.execute(sql.SQL("SELECT bene_id, year, state, ssa2, fips2, zip, zip4, dob, dod, age, ssa3, "
                              "hmo_indicators, hmo_cvg_count FROM {} WHERE source_table = 'mcr_bene_2003' "
                              "ORDER BY record_number").format(sql.Identifier(BUILD, "ps"))).fetchall()
    pg.rollback()
    assert rows[0] == ("a1", 2003, "CA", "05", "06", 1234, 5678, dt.date(1938, 3, 15), dt.date(2003, 7, 4), 65, "010",
                       list("CCCCCC000000"), 6)
    assert rows[1] == ("a2", 2003, None, "99", None, 90210, None, dt.date(1938, 3, 15), None, 65, "010", None, 0)


def test_crosswalk_problems_name_the_file_and_line(pg, tmp_path):
    with pytest.raises(processing.CrosswalkError, match="does not exist"):
        processing.find_crosswalks(tmp_path / "nowhere")
    (tmp_path / "ssa.csv").write_text("county,state,ssacounty,fipscounty,ssastate,fipsstate\nX,AL,01010,01001,01,01\n")
    with pytest.raises(processing.CrosswalkError, match="zip_county"):
        processing.find_crosswalks(tmp_path)
    (tmp_path / "zips.csv").write_text("zip,county,res_ratio\n35004,01001,1.0\n3500X,01001,0.5\n")
    found = processing.find_crosswalks(tmp_path)
    with pytest.raises(processing.CrosswalkError, match=r"zips\.csv:3: zip '3500X'"):
        list(processing.zip_county_rows(found.zip_county))
    (tmp_path / "zips.csv").write_text("zip,county,res_ratio\n35004,01001,lots\n")
    with pytest.raises(processing.CrosswalkError, match=r"zips\.csv:2: res_ratio 'lots'"):
        list(processing.zip_county_rows(found.zip_county))
    assert list(processing.ssa_fips_rows(found.ssa_fips)) == [("01", "010", "01", "001", "X")]
    # the newer NBER layout names the SSA code `ssa_code`; an empty first row is skipped
    (tmp_path / "ssa.csv").write_text("fipscounty,countyname_fips,state,cbsa_code,cbsa_name,ssa_code,state_name\n"
                                      ",,,,,,\n01001,Autauga,AL,33860,Montgomery AL,01000,Alabama\n")
    found = processing.find_crosswalks(tmp_path)
    assert list(processing.ssa_fips_rows(found.ssa_fips)) == [("01", "000", "01", "001", "Autauga")]


def test_unknown_steps_and_missing_raw_tables_are_refused(pg):
    with pytest.raises(ValueError, match="unknown step"):
        processing.run_step(pg, "nonsense")
    with pytest.raises(ValueError, match="crosswalk folder"):
        processing.run_step(pg, "prepare")
