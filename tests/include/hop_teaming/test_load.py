"""Hop Teaming zips into PostgreSQL: the member found, the header checked, line numbers kept, and bad
inputs refused with clear errors or kept as rejects with their reason (never dropped)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from psycopg import sql

from include.common.npi import is_valid_npi
from include.hop_teaming.enrich import luhn_valid
from include.hop_teaming.load import HEADER, HopTeamingError, find_year_zip, load_year

SCHEMA = "hop_build"


def make_zip(path: Path, body: str, *, member: str = "DocGraph_2022_NonCommercial/DocGraph_Hop_Teaming_2022.csv",
             header: str | None = ",".join(HEADER)) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__MACOSX/DocGraph_2022_NonCommercial/._DocGraph_Hop_Teaming_2022.csv", b"\x00\x05junk")
        zf.writestr("DocGraph_2022_NonCommercial/DocGraph Readme.pdf", b"%PDF-1.4")
        zf.writestr(member, (f"{header}\n" if header is not None else "") + body)
    return path


def rows(pg, table: str) -> list[tuple]:
    out = pg.execute(sql.SQL("SELECT * FROM {} ORDER BY line_number").format(sql.Identifier(SCHEMA, table))).fetchall()
    pg.rollback()
    return out


@pytest.fixture
def hop_pg(pg):
    yield pg
    pg.rollback()
    for t in ("t_raw", "t_raw_rejects", "t_raw_lines"):
        pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, t)))
    pg.commit()


GOOD = "1234567893,1245319599,20,31,12.5,3.25\n1245319599,1234567893,11,11,0.0,0\n"


def test_a_clean_year_takes_the_fast_path_with_line_numbers(hop_pg, tmp_path):
    z = make_zip(tmp_path / "DocGraph_2022_NonCommercial.zip", GOOD)
    assert find_year_zip(tmp_path, 2022) == z
    result = load_year(hop_pg, z, 2022, schema=SCHEMA, table="t_raw")
    assert (result.rows, result.rejected, result.careful_path) == (2, 0, False)
    assert rows(hop_pg, "t_raw") == [(2, 1234567893, 1245319599, 20, 31, 12.5, 3.25),
                                     (3, 1245319599, 1234567893, 11, 11, 0.0, 0.0)]


def test_bad_values_and_a_truncated_last_line_are_kept_as_rejects(hop_pg, tmp_path):
    body = GOOD + "1234567893,12x5319599,20,31,1.0,1.0\n1234567893,1245319599,-4,31,1.0,1.0\n1245319599,12345"
    z = make_zip(tmp_path / "h.zip", body)
    result = load_year(hop_pg, z, 2022, schema=SCHEMA, table="t_raw")
    assert result.careful_path and result.rows == 3 and result.rejected == 2
    assert [r[0] for r in rows(hop_pg, "t_raw")] == [2, 3, 5]  # the negative count loads: the checks flag it
    assert rows(hop_pg, "t_raw_rejects") == [(4, "1234567893,12x5319599,20,31,1.0,1.0", "NON-NUMERIC VALUE"),
                                             (6, "1245319599,12345", "MALFORMED LINE")]


def test_no_matching_member_is_refused(hop_pg, tmp_path):
    z = make_zip(tmp_path / "h.zip", GOOD, member="DocGraph/DocGraph_Hop_Teaming_2021.csv")
    with pytest.raises(HopTeamingError, match=r"no member matching '\*hop_teaming_2022\*\.csv'.*2021\.csv"):
        load_year(hop_pg, z, 2022, schema=SCHEMA, table="t_raw")


def test_a_headerless_shared_patient_patterns_file_is_refused(hop_pg, tmp_path):
    z = make_zip(tmp_path / "h.zip", "1234567893,1245319599,120       ,45        ,5\n", header=None)
    with pytest.raises(HopTeamingError, match=r"line 1: line 1 is data.*Shared Patient Patterns"):
        load_year(hop_pg, z, 2022, schema=SCHEMA, table="t_raw")


def test_a_header_in_another_order_is_refused(hop_pg, tmp_path):
    header = "from_npi,to_npi,transaction_count,patient_count,average_day_wait,std_day_wait"
    z = make_zip(tmp_path / "h.zip", GOOD, header=header)
    with pytest.raises(HopTeamingError, match="unexpected header"):
        load_year(hop_pg, z, 2022, schema=SCHEMA, table="t_raw")


def test_a_corrupt_zip_is_refused_and_loads_nothing(hop_pg, tmp_path):
    body = "".join(f"1234567893,1245319599,{11 + i % 50},{80 + i % 7},{i % 90}.5,1.25\n" for i in range(20_000))
    z = make_zip(tmp_path / "h.zip", body)
    data = bytearray(z.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    z.write_bytes(bytes(data))
    with pytest.raises(HopTeamingError, match=r"h\.zip.*corrupt"):
        load_year(hop_pg, z, 2022, schema=SCHEMA, table="t_raw")
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(HopTeamingError, match="not a readable zip"):
        load_year(hop_pg, tmp_path / "not.zip", 2022, schema=SCHEMA, table="t_raw")


def test_check_digits_match_the_reference_implementation():
    rng = np.random.default_rng(7)
    npis = np.concatenate([rng.integers(1_000_000_000, 3_000_000_000, 5_000), [1234567893, 9999999999, 99999999, 0]])
    assert luhn_valid(npis).tolist() == [is_valid_npi(str(n)) for n in npis.tolist()]


def test_nppes_dates_are_parsed_and_a_malformed_one_is_null():
    import datetime

    import pyarrow as pa

    from include.hop_teaming.enrich import _date

    parsed = _date(pa.array(["05/23/2005", "", "13/45/2020", "2020-01-01", None, "12/31/1999"]))
    assert parsed.type == pa.date32()
    assert parsed.to_pylist() == [datetime.date(2005, 5, 23), None, None, None, None, datetime.date(1999, 12, 31)]


def test_deactivated_weekly_superseded_and_negative_rows_are_flagged(hop_pg, tmp_path):
    """Checks the sandbox does not plant: an NPI deactivated before the year (and one reactivated since,
    which stays), a weekly NPPES row replacing the monthly one, a negative value; with the primary
    taxonomy taken from its switch rather than slot 1."""
    import csv

    from include.hop_teaming import enrich, referral

    npis = [1234567893, 1245319599, 1003000126, 1003000134, 1003000142]
    assert all(luhn_valid(np.array(npis)))
    header = ["NPI", "Entity Type Code", "Provider Organization Name (Legal Business Name)",
              "Provider Last Name (Legal Name)", "Provider First Name", "NPI Deactivation Date", "NPI Reactivation Date",
              "Healthcare Provider Taxonomy Code_1", "Healthcare Provider Primary Taxonomy Switch_1",
              "Healthcare Provider Taxonomy Code_2", "Healthcare Provider Primary Taxonomy Switch_2"]
    monthly = tmp_path / "nppes" / "monthly" / "NPPES_Data_Dissemination_January_2023_V2"
    weekly = tmp_path / "nppes" / "weekly" / "NPPES_Data_Dissemination_010923_011523_Weekly_V2"
    for folder, name, rows in (
        (monthly, "npidata_pfile_20050523-20230108.csv", [
            [npis[0], "1", "", "DOE", "JANE", "", "", "207RC0000X", "N", "207Q00000X", "Y"],
            [npis[1], "1", "", "ROE", "RICHARD", "", "", "207RC0000X", "Y", "", ""],
            [npis[2], "", "", "", "", "05/01/2019", "", "", "", "", ""],                  # deactivated 2019
            [npis[3], "2", "GOOD HOSPITAL", "", "", "03/01/2018", "06/01/2018", "282N00000X", "Y", "", ""],
            [npis[4], "1", "", "OLD", "NAME", "", "", "207Q00000X", "Y", "", ""]]),
        (weekly, "npidata_pfile_20230109-20230115.csv", [
            [npis[4], "1", "", "NEW", "NAME", "", "", "207P00000X", "Y", "", ""]])):
        folder.mkdir(parents=True)
        with (folder / name).open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    body = "".join(f"{a},{b},{p},{t},5.0,1.0\n" for a, b, p, t in [
        (npis[0], npis[1], 20, 25),   # clean: family medicine (its Y slot) -> cardiology
        (npis[0], npis[2], 20, 25),   # to an NPI deactivated before 2022
        (npis[0], npis[3], 20, 25),   # reactivated: clean
        (npis[4], npis[1], 20, 25),   # clean; the weekly row says emergency medicine
        (npis[1], npis[0], 30, -1),   # negative transactions (also below patients)
        (npis[1], npis[4], 40, 45),   # clean, the reverse of npis[4] -> npis[1]
    ]) + f"{npis[0]},,20,25,5.0,1.0\n"  # an empty field: COPY reads NULL
    z = make_zip(tmp_path / "h.zip", body)
    enrich.ensure_schema(hop_pg)
    hop_pg.execute("DELETE FROM hop.nucc_taxonomy")  # the NUCC names the roles are read from
    hop_pg.execute("""INSERT INTO hop.nucc_taxonomy VALUES
        ('207Q00000X', 'Allopathic & Osteopathic Physicians', 'Family Medicine', '', ''),
        ('207RC0000X', 'Allopathic & Osteopathic Physicians', 'Internal Medicine', 'Cardiovascular Disease', ''),
        ('207P00000X', 'Allopathic & Osteopathic Physicians', 'Emergency Medicine', '', ''),
        ('282N00000X', 'Hospitals', 'General Acute Care Hospital', '', '')""")
    hop_pg.commit()
    n = enrich.names(2022)
    try:
        load_year(hop_pg, z, 2022, schema=enrich.BUILD, table=n["raw"])
        rules = referral.load_rules()
        enrich.build_npis(hop_pg, 2022, tmp_path / "nppes", referral.role_sql(rules, alias="t"))
        dq = enrich.check_and_enrich(hop_pg, 2022, "DocGraph_Hop_Teaming_2022.csv",
                                     referral.score_sql(rules, alias="e", role_index_columns=("from_role_index", "to_role_index")),
                                     0.6)
        assert dq["NPI DEACTIVATED"] == 1 and dq["NEGATIVE VALUE"] == 1 and dq["CLEAN EDGES"] == 4
        assert dq["MISSING VALUE"] == 1 and dq["LINES"] == 7 and dq["REJECTED LINES"] == 3
        missing = hop_pg.execute(sql.SQL("SELECT line_number, line, reasons FROM {}.{} WHERE reason = 'MISSING VALUE'")
                                 .format(sql.Identifier(enrich.BUILD), sql.Identifier(n["audit"]))).fetchall()
        assert missing == [(8, f"{npis[0]},,20,25,5,1", ["MISSING VALUE"])], "the empty field stays empty in the line"
        scored = {(r[0], r[1]): r[2:] for r in hop_pg.execute(sql.SQL(
            "SELECT from_npi, to_npi, from_role, to_role, reverse_patient_count, reverse_transaction_count FROM {}.{}")
            .format(sql.Identifier(enrich.BUILD), sql.Identifier(n["scored"])))}
        assert scored[(npis[4], npis[1])][2:] == (40, 45) and scored[(npis[1], npis[4])][2:] == (20, 25)
        assert scored[(npis[0], npis[1])][2:] == (None, None), "its reverse has a negative value: not an edge"
        assert scored[(npis[0], npis[1])][:2] == ("primary_care", "specialist")
        assert scored[(npis[4], npis[1])][:2] == ("emergency", "specialist"), "the weekly row wins"
        assert scored[(npis[0], npis[3])][1] == "hospital"
    finally:
        hop_pg.rollback()
        hop_pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(enrich.BUILD)))
        hop_pg.commit()


def test_publishing_a_year_built_by_a_newer_version(hop_pg):
    """A new column is added to the published table (NULL for earlier years); a removed or retyped one is
    refused with what to do, and nothing changes."""
    from include.hop_teaming import enrich

    pg = hop_pg
    pg.execute("CREATE SCHEMA IF NOT EXISTS hop_build; CREATE SCHEMA IF NOT EXISTS hop")
    pg.execute("DROP TABLE IF EXISTS hop.t_pub CASCADE")
    pg.execute("CREATE TABLE hop.t_pub (year integer, npi bigint) PARTITION BY LIST (year)")
    pg.execute("CREATE TABLE hop_build.t_new (year integer, npi bigint, role_index integer)")
    try:
        enrich._align_columns(pg, "t_pub", "t_new")
        assert "role_index" in enrich._columns(pg, "hop", "t_pub")
        pg.execute("CREATE TABLE hop_build.t_old (year integer, npi text)")
        with pytest.raises(enrich.HopTeamingError, match=r"npi \(bigint -> text\).*role_index no longer built.*DROP TABLE"):
            enrich._align_columns(pg, "t_pub", "t_old")
    finally:
        pg.rollback()
