"""The FTS parser against the sandbox's FTS files (and their expected facts), the reference's examples,
and malformed inputs (each must name the file and the line)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from include.common.errors import ClaimsflowError, InvalidIdentifier
from include.fts_parsers.fts import (
    FtsColumn,
    FtsError,
    FtsLayout,
    find_fts_files,
    parse_fts,
    parse_fts_text,
    table_name_for,
)

# The reference's illustrative example (medicare_fts.md): BENE_RSDNC_SSA_STATE_CD overflows its field.
REFERENCE_EXAMPLE = """\
File Transfer Summary
Request ID:                                          REQ007087
File Name:                                           medpar_all_file_res000017155_req007087_2015
Columns in File:                                     6
Exact File Record Length (Bytes in Variable Block):  39
---- ------------------------------ ---------------------- ---- ----- ----- ------------------------------
   1 Beneficiary ID                 BENE_ID                CHAR     1    15 Encrypted beneficiary id
   2 MEDPAR Year                    MEDPAR_YR_NUM          CHAR    16     4 Year of discharge
   3 Beneficiary Residence State    BENE_RSDNC_SSA_STATE_CD CHAR   20     2 SSA state code
   4 Admission Date                 ADMSN_DT               DATE    22     8 YYYYMMDD
   5 Length of Stay                 LOS_DAY_CNT            NUM     30     4 Days
   6 Total Charge                   TOT_CHRG_AMT           NUM     34   6.2 Dollars
End of Document
"""

# A small well-formed FTS in the sandbox's shape; the bad-input tests each change one thing in it.
GOOD = """\
File Transfer Summary

Researcher:                                          JANE Q RESEARCHER
Columns in File:                                     4
Exact File Quantity (Rows):                          1,234
Exact File Record Length (Bytes in Variable Block):  29
{EXTRA}
Col  Long Name                      Short Name   Type Start Length Description
---- ------------------------------ ------------ ---- ----- ------ --------------------------------------------
1    BENE_ID                        BENE_ID      CHAR 1     15     Encrypted 723 Beneficiary ID
2    BENE_ENROLLMT_REF_YR           RFRNC_YR     NUM  16    4      Reference Year
3    BENE_BIRTH_DT                  BENE_DOB     DATE 20    8      Date of Birth
4    BENE_AGE_AT_END_REF_YR         AGE          NUM  28    2      Age

- End of Document -
"""
GOOD_TEXT = GOOD.replace("{EXTRA}\n", "")
FIRST_ROW_LINE = 9  # line number of the row `1    BENE_ID ...` in GOOD_TEXT


def _mbsf_ab_fts() -> str:
    """The 51-column mbsf_ab layout of nsaph_medicare_model.md 1.8 as an FTS (from the sandbox's copy)."""
    from include.sandbox.medicare_layouts import mbsf_ab_layout

    widths = (4, 30, 12, 4, 5, 6, 44)
    rows, start = [], 1
    for i, f in enumerate(mbsf_ab_layout(), 1):
        cells = [str(i), f.long, f.short, f.type, str(start), f.width_text, f.desc]
        rows.append(" ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        start += f.width
    return "\n".join([
        "Columns in File:                                     51",
        "Exact File Record Length (Bytes in Variable Block):  119",
        "",
        " ".join("-" * w for w in widths),
        *rows,
        "",
    ])


# ------------------------------------------------------------------------------------- the sandbox

def _sandbox_fts(root: Path) -> list[Path]:
    return sorted((root / "restricted" / "medicare").glob("*/*.fts"))


def _expected_for(root: Path, fts: Path) -> dict:
    year = int(fts.parent.name)
    files = json.loads((root / "expected" / f"medicare_{year}.json").read_text())["files"]
    (entry,) = [v for v in files.values() if v.get("fts") == fts.relative_to(root).as_posix()]
    return entry


def _overflowing_rows(fts: Path) -> set[int]:
    """Rows whose short name is longer than its separator group (found independently of the parser)."""
    lines = fts.read_text(encoding="ascii").splitlines()
    sep = next(i for i, line in enumerate(lines) if line.startswith("---") and "-" * 18 in line)
    short_width = len(lines[sep].split(" ")[2])
    out = set()
    for i in range(sep + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.startswith("Note:") or "End of Document" in line:
            break
        if len(line.split()[2]) > short_width:
            out.add(i + 1)
    return out


def test_sandbox_fts_files_parse_as_expected(tiny_sandbox, caplog):
    files = _sandbox_fts(tiny_sandbox)
    assert {f.parent.name for f in files} >= {"2011", "2015"}
    for fts in files:
        expected = _expected_for(tiny_sandbox, fts)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="claimsflow.fts"):
            layout = parse_fts(fts)
        assert layout.record_length == expected["record_length"], fts.name
        assert len(layout.columns) == expected["columns"] == layout.declared_columns, fts.name
        assert layout.record_count == expected["records"], fts.name
        assert layout.length_key == expected["fts_length_key"], fts.name
        assert sum(c.width for c in layout.columns) == layout.record_length
        for name in filter(None, expected["uniform"].values()):
            assert layout.column(name.lower()).name == name
        # the planted misaligned rows are reported (file + line) — and so is every other row whose
        # short name overflows its field (the sandbox writes those too, e.g. DGNS_VRSN_CD_1)
        warned = {int(m) for r in caplog.records for m in re.findall(rf"{re.escape(str(fts))}, line (\d+)",
                                                                     r.getMessage())}
        assert set(expected["fts_misaligned_lines"]) == warned, fts.name
        assert warned == set(layout.misaligned_lines) == _overflowing_rows(fts), fts.name
        if expected["fts_misaligned_lines"]:
            row = layout.column("MEDPAR_YR_NUM")
            assert (row.type, row.width, row.line) == ("CHAR", 4, expected["fts_misaligned_lines"][0])
        # JSON round trip
        assert FtsLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout


def test_sandbox_discovery(tiny_sandbox):
    found = find_fts_files(tiny_sandbox / "restricted" / "medicare")
    by_table = {f.table: f for f in found}
    for year in (2011, 2015):
        expected = json.loads((tiny_sandbox / "expected" / f"medicare_{year}.json").read_text())["files"]
        for kind, entry in expected.items():
            f = by_table[f"{kind}_{year}"]
            assert f.year == year
            assert [p.relative_to(tiny_sandbox).as_posix() for p in f.data] == sorted(entry["data"])
    assert [f.year for f in found] == sorted(f.year for f in found)


# ------------------------------------------------------------------------------ reference examples

def test_reference_example_with_overflowing_short_name(caplog):
    with caplog.at_level(logging.WARNING, logger="claimsflow.fts"):
        layout = parse_fts_text(REFERENCE_EXAMPLE, source="example.fts")
    assert layout.names == ("BENE_ID", "MEDPAR_YR_NUM", "BENE_RSDNC_SSA_STATE_CD", "ADMSN_DT", "LOS_DAY_CNT",
                            "TOT_CHRG_AMT")
    state = layout.column("bene_rsdnc_ssa_state_cd")
    assert (state.long_name, state.type, state.start, state.width, state.description, state.line) == (
        "Beneficiary Residence State", "CHAR", 20, 2, "SSA state code", 9)
    assert layout.misaligned_lines == (9,)
    assert "example.fts, line 9" in caplog.text
    assert layout.record_length == 39 and layout.record_count is None and layout.declared_columns == 6
    assert layout.metadata["Request ID"] == "REQ007087"
    assert layout.column("LOS_DAY_CNT").long_name == "Length of Stay"
    assert [c.sql_type for c in layout.columns] == ["varchar(15)", "varchar(4)", "varchar(2)", "date", "integer",
                                                    "numeric(6,2)"]
    charge = layout.column("TOT_CHRG_AMT")
    assert (charge.width, charge.scale, charge.offset, charge.end) == (6, 2, 33, 39)


def test_mbsf_ab_51_columns():
    layout = parse_fts_text(_mbsf_ab_fts(), source="mbsf_ab_summary_2011.fts")
    assert len(layout.columns) == 51 and layout.record_length == 119
    first, last = layout.columns[0], layout.columns[-1]
    assert (first.order, first.name, first.type, first.start, first.width, first.offset) == (1, "BENE_ID", "CHAR",
                                                                                             1, 15, 0)
    assert (last.order, last.name, last.long_name, last.start, last.width) == (51, "HMOIND12", "BENE_HMO_IND_12",
                                                                               119, 1)
    assert layout.column("ndi_death_dt").type == "DATE"
    assert layout.misaligned_lines == ()
    with pytest.raises(KeyError):
        layout.column("nope")


def test_variants_crlf_bom_cp1252_trailing_spaces(tmp_path):
    text = GOOD_TEXT.replace("Age\n", "Age \u00e9t\u00e9   \n").replace("  29\n", "  29   \n")
    path = tmp_path / "x_2011.fts"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    utf8 = parse_fts(path)
    path.write_bytes(text.encode("cp1252"))
    cp1252 = parse_fts(path)
    assert utf8.columns == cp1252.columns
    assert utf8.column("AGE").description == "Age \u00e9t\u00e9"
    assert utf8.record_count == 1234 and utf8.record_length == 29
    assert utf8.metadata["Researcher"] == "JANE Q RESEARCHER"
    assert utf8.path == str(path)


def test_maximum_possible_record_length_with_thousands_separator():
    text = GOOD_TEXT.replace("Exact File Record Length (Bytes in Variable Block):  29",
                             "Maximum Possible Record Length:                      29")
    layout = parse_fts_text(text)
    assert layout.record_length == 29 and layout.length_key == "Maximum Possible Record Length"
    wide = parse_fts_text(text.replace("NUM  28    2      Age", "NUM  28    1000   Age").replace("  29\n", "  1,027\n"))
    assert wide.record_length == 1027


def test_maximum_record_length_above_widths_warns(caplog):
    text = GOOD_TEXT.replace("Exact File Record Length (Bytes in Variable Block):  29",
                             "Maximum Possible Record Length:                      32")
    with caplog.at_level(logging.WARNING, logger="claimsflow.fts"):
        layout = parse_fts_text(text, source="m.fts")
    assert layout.record_length == 29
    assert "m.fts, line 6" in caplog.text and "add up to 29" in caplog.text
    text = text.replace("  32\n", "  27\n")
    with pytest.raises(FtsError, match="AGE .*runs past the record length 27"):
        parse_fts_text(text)


def test_header_variants():
    text = (GOOD_TEXT.replace("Exact File Quantity (Rows):                          1,234\n",
                              "Actual File Name:  mbsf_ab_summary_2011.dat (2,345 Rows)\n")
            .replace("  29\n", "  29 bytes\n")
            .replace("- End of Document -", "NOTE: dates are YYYYMMDD"))
    layout = parse_fts_text(text.replace("Columns in File:", "COLUMNS  IN FILE:"))
    assert (layout.record_count, layout.record_length, layout.declared_columns) == (2345, 29, 4)
    assert parse_fts_text(GOOD_TEXT.replace("1,234", "")).record_count is None  # stated empty: unknown
    with pytest.raises(FtsError, match="'Exact File Quantity \\(Rows\\)' should be a whole number") as info:
        parse_fts_text(GOOD_TEXT.replace("1,234", "many"), source="r.fts")
    assert info.value.line == 5


def test_row_numbers_out_of_sequence_warn(caplog):
    text = GOOD_TEXT.replace("3    BENE_BIRTH_DT ", "7    BENE_BIRTH_DT ")
    with caplog.at_level(logging.WARNING, logger="claimsflow.fts"):
        layout = parse_fts_text(text, source="o.fts")
    assert layout.column("BENE_DOB").order == 7
    assert f"o.fts, line {FIRST_ROW_LINE + 2}: column BENE_DOB is numbered 7, expected 3" in caplog.text


def test_sql_types():
    def col(type_: str, width: int, scale: int = 0) -> FtsColumn:
        return FtsColumn(1, "X", "X", type_, 1, width, scale, "", 1)

    assert col("NUM", 9).sql_type == "integer"
    assert col("NUM", 10).sql_type == "bigint"
    assert col("NUM", 12, 2).sql_type == "numeric(12,2)"
    assert col("NUM", 20).sql_type == "numeric(20)"
    assert col("CHAR", 7).sql_type == "varchar(7)"
    assert col("DATE", 8).sql_type == "date"


# ------------------------------------------------------------------------------------- bad inputs

def _bad(text: str, match: str, line: int | None) -> FtsError:
    with pytest.raises(FtsError, match=match) as info:
        parse_fts_text(text, source="bad_2011.fts")
    err = info.value
    assert isinstance(err, ClaimsflowError)
    assert err.source == "bad_2011.fts"
    assert err.line == line
    assert str(err).startswith(f"bad_2011.fts, line {line}: ")
    return err


def _row(n: int) -> int:
    return FIRST_ROW_LINE + n - 1


def test_missing_table():
    text = "\n".join(line for line in GOOD_TEXT.splitlines() if not line.startswith("----")) + "\n"
    _bad(text, "no column table: expected a separator line of 7 dash groups", len(text.splitlines()))


def test_separator_with_six_groups():
    sep = " ".join("-" * w for w in (4, 30, 12, 4, 5, 6, 44))
    six = " ".join("-" * w for w in (4, 30, 12, 4, 5, 51))  # width and description run together
    text = GOOD_TEXT.replace(sep, six)
    _bad(text, "separator has 6 dash groups, expected 7", FIRST_ROW_LINE - 1)


def test_overlapping_columns():
    text = GOOD_TEXT.replace("DATE 20    8", "DATE 19    9")
    _bad(text, "BENE_DOB .* overlaps column RFRNC_YR", _row(3))


def test_gap_between_columns():
    text = GOOD_TEXT.replace("DATE 20    8 ", "DATE 21    7 ")
    _bad(text, "gap after column RFRNC_YR.*20-20.*contiguous", _row(3))


def test_non_numeric_position():
    _bad(GOOD_TEXT.replace("NUM  16    4", "NUM  1x    4"), "start position '1x' of column RFRNC_YR is not a number",
         _row(2))
    _bad(GOOD_TEXT.replace("NUM  16    4 ", "NUM  16    4a"), "width '4a' of column RFRNC_YR", _row(2))


def test_unknown_type():
    _bad(GOOD_TEXT.replace("DATE 20", "DT   20"), "unknown type 'DT' of column BENE_DOB", _row(3))


def test_duplicate_name():
    _bad(GOOD_TEXT.replace("AGE          NUM", "bene_id      NUM"), "duplicate column name 'bene_id'", _row(4))


def test_record_length_disagrees_with_widths():
    _bad(GOOD_TEXT.replace("  29\n", "  31\n"), "record length of 31 bytes, but the column widths add up to 29", 6)
    _bad(GOOD_TEXT.replace("  29\n", "  25\n"), "BENE_DOB .*runs past the record length 25", _row(3))


def test_record_length_missing():
    text = GOOD_TEXT.replace("Exact File Record Length (Bytes in Variable Block):  29\n", "")
    _bad(text, "no record length", FIRST_ROW_LINE - 2)


def test_columns_in_file_mismatch():
    _bad(GOOD_TEXT.replace("Columns in File:                                     4",
                           "Columns in File:                                     5"),
         "'Columns in File' says 5 columns but the table has 4", 4)


def test_empty_file(tmp_path):
    path = tmp_path / "empty_2011.fts"
    path.write_bytes(b"")
    with pytest.raises(FtsError, match="empty") as info:
        parse_fts(path)
    assert info.value.source == str(path) and info.value.line == 1
    _bad("\n  \n", "empty", 1)


def test_no_rows_after_separator():
    text = GOOD_TEXT.split("1    BENE_ID")[0] + "\nEnd of Document\n"
    _bad(text, "no rows", FIRST_ROW_LINE - 1)


def test_unreadable_row():
    _bad(GOOD_TEXT.replace("4    BENE_AGE_AT_END_REF_YR         AGE          NUM  28    2      Age", "4    garbage"),
         "column row|not a number|unknown type", _row(4))


# ------------------------------------------------------------------------------ discovery, names

def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_find_fts_files_pairs_parts(tmp_path):
    y = tmp_path / "medicare" / "2013"
    _touch(y / "mbsf_ab_summary_res1_req2_2013.fts")
    _touch(y / "mbsf_ab_summary_res1_req2_2013.DAT")
    _touch(y / "medpar_all_file_res1_req2_2013.fts")
    for n in ("010", "002", "001"):
        _touch(y / f"medpar_all_file_res1_req2_2013_{n}.dat")
    _touch(y / "medpar_all_file_res1_req2_2013_notes.dat")  # not a part
    _touch(tmp_path / "medicare" / "2012" / "mbsf_d_cmpnts_2012.fts")  # no data: kept, warned
    found = find_fts_files(tmp_path / "medicare")
    assert [(f.year, f.fts.name, [p.name for p in f.data]) for f in found] == [
        (2012, "mbsf_d_cmpnts_2012.fts", []),
        (2013, "mbsf_ab_summary_res1_req2_2013.fts", ["mbsf_ab_summary_res1_req2_2013.DAT"]),
        (2013, "medpar_all_file_res1_req2_2013.fts", [f"medpar_all_file_res1_req2_2013_{n}.dat"
                                                       for n in ("001", "002", "010")]),
    ]
    assert [f.table for f in found] == ["mbsf_d_cmpnts_2012", "mbsf_ab_summary_2013", "medpar_all_file_2013"]
    assert find_fts_files(y) == found[1:]


def test_find_fts_files_folder_errors(tmp_path):
    fts = _touch(tmp_path / "medicare" / "latest" / "medpar_all_file_2013.fts")
    with pytest.raises(FtsError, match="4-digit year") as info:
        find_fts_files(tmp_path / "medicare")
    assert info.value.source == str(fts)
    fts.rename(_touch(tmp_path / "medicare" / "2014" / "x").parent / fts.name)
    (tmp_path / "medicare" / "latest").rmdir()
    with pytest.raises(FtsError, match="says 2013 but it lies in the folder 2014"):
        find_fts_files(tmp_path / "medicare")
    with pytest.raises(FtsError, match="not a folder"):
        find_fts_files(tmp_path / "missing")


def test_table_name_for():
    assert table_name_for("x/2015/medpar_all_file_res000017155_req007087_2015.fts") == "medpar_all_file_2015"
    assert table_name_for("2012/MBSF_ABCD_SUMMARY_res1_2012.fts") == "mbsf_abcd_summary_2012"
    assert table_name_for("2012/mbsf_ab_summary_res1_2012.fts") == "mbsf_ab_summary_2012"
    assert table_name_for("2012/mbsf_d_cmpnts_res1.fts") == "mbsf_d_cmpnts_2012"  # year from the folder
    assert table_name_for("2011/den_saf_lds_100_2011.fts") == "den_saf_lds_100_2011"
    unsafe = table_name_for("2011/Robert'); DROP TABLE students;--.fts")
    assert unsafe == "robert_drop_table_students"
    assert table_name_for("2011/2011 extract.fts") == "t_2011_extract"
    with pytest.raises(InvalidIdentifier):
        table_name_for("2011/%%%.fts")
    with pytest.raises(FtsError, match="year"):
        table_name_for("medpar_all_file.fts")
