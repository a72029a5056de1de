"""The loader streams COPY text (not typed Arrow columns): what PostgreSQL stores must be exactly what the
typed reader reads, value by value, and values PostgreSQL text format would misread (backslash, tab,
CR, quote) or cannot hold (NUL), and bytes that are not ASCII, must come out right or as rejects."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from psycopg import sql

from include.fts_parsers.fixed_width import read_fwf
from include.fts_parsers.fts import FtsFile, find_fts_files, parse_fts
from include.medicare import ingest


@pytest.mark.parametrize("year", [2011, 2015])
def test_every_stored_value_is_the_typed_readers_value(raw_db, tiny_sandbox, year):
    for fts_file in find_fts_files(tiny_sandbox / "restricted" / "medicare" / str(year)):
        layout = parse_fts(fts_file.fts)
        result = ingest.load_fwf(raw_db, fts_file, layout, block_size=32 << 10)
        names = [c.name.lower() for c in layout.columns]
        stored = raw_db.execute(sql.SQL("SELECT source_file, record_number, {} FROM {} ORDER BY 1, 2").format(
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier("medicare_raw", fts_file.table))).fetchall()
        expected = []
        for data in sorted(fts_file.data, key=lambda p: p.name):
            for batch in read_fwf(data, layout.columns, layout.record_length):
                for number, row in zip(batch.record_numbers.to_pylist(), batch.table.to_pylist(), strict=True):
                    expected.append((data.name, number, *row.values()))
        assert len(stored) == result.rows > 0
        assert stored == expected


FTS = """\
File Transfer Summary

Columns in File:                                     5
Exact File Quantity (Rows):                          7
Exact File Record Length (Bytes in Variable Block):  41

Col  Long Name                      Short Name   Type Start Length Description
---- ------------------------------ ------------ ---- ----- ------ --------------------------------------------
1    BENE_ID                        BENE_ID      CHAR 1     15     Encrypted Beneficiary ID
2    BENE_ENROLLMT_REF_YR           RFRNC_YR     NUM  16    4      Reference Year
3    BENE_BIRTH_DT                  BENE_DOB     DATE 20    8      Date of Birth
4    NOTE                           NOTE         CHAR 28    6      Free text
5    AMOUNT                         AMT          NUM  34    8.2    Dollars

- End of Document -
"""


def record(bene: bytes, note: bytes, amt: bytes = b"12.50", dob: bytes = b"19400229") -> bytes:
    return bene.ljust(15) + b"2015" + dob + note.ljust(6) + amt.rjust(8)


def test_odd_values_are_stored_exactly_and_bad_bytes_are_rejects_naming_file_and_record(raw_db, tmp_path):
    folder = tmp_path / "2015"
    folder.mkdir()
    (folder / "odd_values_2015.fts").write_text(FTS)
    lines = [
        record(b"B1", b"a\\b\tc", b"+1.5"),  # backslash, tab
        record(b'B2 "q"', b"x,y\rz", b"-.25", b"        "),  # quote, comma, CR inside; blank date
        record(b"B3", b"\\.", b"0"),  # would end COPY text if not escaped
        record(b"B4", b"caf\xe9"),  # not ASCII
        record(b"B5", b"n\x00l"),  # NUL
        record(b"B6", b"      ", b"", b"20150231"),  # not a calendar day
        record(b"B7", b"  lead", b"99999.99", b"00991231"),  # leading blanks are data; year 99
    ]
    (folder / "odd_values_2015.dat").write_bytes(b"\n".join(lines) + b"\n")
    (fts_file,) = find_fts_files(folder)
    result = ingest.load_fwf(raw_db, fts_file, parse_fts(fts_file.fts))
    assert (result.rows, result.rejected_by_kind) == (4, {"non_ascii": 1, "nul_byte": 1, "invalid_date": 1})
    rows = raw_db.execute("SELECT source_file, record_number, bene_id, rfrnc_yr, bene_dob, note, amt, year "
                          "FROM medicare_raw.odd_values_2015 ORDER BY record_number").fetchall()
    assert rows == [
        ("odd_values_2015.dat", 1, "B1", 2015, dt.date(1940, 2, 29), "a\\b\tc", Decimal("1.50"), 2015),
        ("odd_values_2015.dat", 2, 'B2 "q"', 2015, None, "x,y\rz", Decimal("-0.25"), 2015),
        ("odd_values_2015.dat", 3, "B3", 2015, dt.date(1940, 2, 29), "\\.", Decimal("0.00"), 2015),
        ("odd_values_2015.dat", 7, "B7", 2015, dt.date(99, 12, 31), "  lead", Decimal("99999.99"), 2015),
    ]
    rejects = raw_db.execute("SELECT source_file, record_number, kind, reason, raw FROM medicare_raw.ingest_rejects "
                             "WHERE table_name = 'odd_values_2015' ORDER BY record_number").fetchall()
    assert rejects == [
        ("odd_values_2015.dat", 4, "non_ascii", r"non_ascii:NOTE:caf\xe9", lines[3]),
        ("odd_values_2015.dat", 5, "nul_byte", r"nul_byte:NOTE:n\x00l", lines[4]),
        ("odd_values_2015.dat", 6, "invalid_date", "bad_value:BENE_DOB:20150231", lines[5]),
    ]
    manifest = raw_db.execute("SELECT details FROM claimsflow_meta.load_manifest WHERE target = "
                              "'medicare_raw.odd_values_2015' AND status = 'done'").fetchone()[0]
    assert manifest["rejected_by_kind"] == {"non_ascii": 1, "nul_byte": 1, "invalid_date": 1}
    assert json.dumps(manifest)  # the reasons went into a jsonb without trouble


def test_a_part_name_with_quotes_is_stored_as_it_is(raw_db, tmp_path):
    folder = tmp_path / "2015"
    folder.mkdir()
    fts = folder / "it's \"odd\"; x_2015.fts"
    fts.write_text(FTS)
    parts = (folder / "it's \"odd\"; x_2015_001.dat", folder / "it's \"odd\"; x_2015_002.dat")
    parts[0].write_bytes(record(b"P1", b"one") + b"\n")
    parts[1].write_bytes(record(b"P2", b"two") + b"\n" + record(b"P3", b"x", b"1.234") + b"\n")
    fts_file = FtsFile(fts=fts, data=parts, year=2015)
    assert fts_file.table == "it_s_odd_x_2015"
    result = ingest.load_fwf(raw_db, fts_file, parse_fts(fts))
    assert (result.rows, result.rejected) == (2, 1)
    rows = raw_db.execute("SELECT source_file, record_number, bene_id FROM medicare_raw.it_s_odd_x_2015 "
                          "ORDER BY 1, 2").fetchall()
    assert rows == [(parts[0].name, 1, "P1"), (parts[1].name, 1, "P2")]
    assert raw_db.execute("SELECT source_file, record_number, reason FROM medicare_raw.ingest_rejects").fetchall() == \
        [(parts[1].name, 2, "bad_value:AMT:1.234")]
    default = raw_db.execute("SELECT column_default FROM information_schema.columns WHERE table_schema = "
                             "'medicare_raw' AND table_name = 'it_s_odd_x_2015' AND column_name = 'source_file'")
    assert default.fetchone()[0] is None, "the per-part default used for COPY is gone"
