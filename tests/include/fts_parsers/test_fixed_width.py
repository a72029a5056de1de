"""The fixed-width reader against the sandbox's Medicare files (planted bad records) and small hand-made
files: counts per reject kind, exact values, block boundaries, terminators, typed columns, errors."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from include.fts_parsers.fixed_width import (
    FwfColumn,
    FwfError,
    arrow_schema,
    batch_to_csv,
    columns_from_widths,
    read_fwf,
)
from include.sandbox.medicare_layouts import mbsf_ab_layout, mbsf_abcd_layout, medpar_layout

FILES = [  # (year, kind in the expected file, layout)
    (2011, "mbsf_ab_summary", mbsf_ab_layout()),
    (2011, "medpar_all_file", medpar_layout(2011)),
    (2015, "mbsf_abcd_summary", mbsf_abcd_layout()),
    (2015, "medpar_all_file", medpar_layout(2015)),
]


def layout_columns(layout) -> list[FwfColumn]:
    return columns_from_widths([(f.short, f.type, f.width, f.scale) for f in layout])


def expected(root: Path, year: int, kind: str) -> dict:
    return json.loads((root / "expected" / f"medicare_{year}.json").read_text())["files"][kind]


def read_all(path, columns, record_length, **kw):
    reader = read_fwf(path, columns, record_length, **kw)
    batches = list(reader)
    table = pa.concat_tables([b.table for b in batches]) if batches else None
    numbers = [n for b in batches for n in b.record_numbers.to_pylist()]
    rejects = [r for b in batches for r in b.rejects]
    return reader.stats, table, numbers, rejects


@pytest.mark.parametrize(("year", "kind", "layout"), FILES, ids=[f"{y}-{k}" for y, k, _ in FILES])
def test_sandbox_counts_match_the_manifest(tiny_sandbox, year, kind, layout):
    exp = expected(tiny_sandbox, year, kind)
    cols = layout_columns(layout)
    assert sum(c.width for c in cols) == exp["record_length"]
    good, records, by_kind = 0, 0, {}
    for rel, count in exp["data"].items():
        stats, table, numbers, rejects = read_all(tiny_sandbox / rel, cols, exp["record_length"])
        assert stats.terminator == exp["line_end"]
        assert stats.records == count
        assert stats.good == table.num_rows == len(numbers)
        assert stats.rejects == len(rejects)
        assert sorted(numbers + [r.record for r in rejects]) == list(range(1, count + 1))  # nothing lost
        good += stats.good
        records += stats.records
        for k, v in stats.rejected.items():
            by_kind[k] = by_kind.get(k, 0) + v
    assert records == exp["records"]
    assert good == exp["loaded"]
    assert by_kind == exp["rejects"]


def test_reject_reasons_and_raw_bytes(tiny_sandbox):
    exp = expected(tiny_sandbox, 2011, "medpar_all_file")
    (rel,) = exp["data"]
    path = tiny_sandbox / rel
    lines = path.read_bytes().split(b"\r\n")
    _, _, _, rejects = read_all(path, layout_columns(medpar_layout(2011)), exp["record_length"])
    by_kind = {r.kind: r for r in rejects}
    assert by_kind["short_record"].reason == "short_record"
    assert by_kind["invalid_date"].reason == "bad_value:DSCHRGDT:20110231"
    assert by_kind["non_numeric"].reason == "bad_value:LOSCNT:1O"
    for r in rejects:
        assert r.raw == lines[r.record - 1]  # the record as it is in the file, without its CRLF


@pytest.mark.parametrize(("year", "kind", "layout"), [FILES[0], FILES[3]], ids=["2011-summary", "2015-medpar"])
def test_values_round_trip_against_hand_sliced_bytes(tiny_sandbox, year, kind, layout):
    exp = expected(tiny_sandbox, year, kind)
    rel = next(iter(exp["data"]))
    path = tiny_sandbox / rel
    eol = b"\r\n" if exp["line_end"] == "CRLF" else b"\n"
    lines = path.read_bytes().split(eol)
    cols = layout_columns(layout)
    _, table, numbers, _ = read_all(path, cols, exp["record_length"])
    rows = table.to_pylist()
    for i in (0, 1, 2, len(rows) // 2, len(rows) - 1):
        line = lines[numbers[i] - 1]
        for c in cols:
            text = line[c.offset:c.offset + c.width].decode("ascii")
            got = rows[i][c.name]
            if not text.strip():
                assert got is None, c.name
            elif c.type == "CHAR":
                assert got == text.rstrip(), c.name
            elif c.type == "DATE":
                assert got == dt.datetime.strptime(text, "%Y%m%d").date(), c.name
            elif c.scale:
                assert got == Decimal(text.strip()), c.name
            else:
                assert got == int(text), c.name


@pytest.mark.parametrize("block_size", [1, 7, 1000, 4096])
@pytest.mark.parametrize(("year", "kind", "layout"), [FILES[0], FILES[1], FILES[2]], ids=["2011-ab", "2011-medpar", "2015-abcd"])
def test_block_boundaries_do_not_change_the_result(tiny_sandbox, year, kind, layout, block_size):
    exp = expected(tiny_sandbox, year, kind)
    path = tiny_sandbox / next(iter(exp["data"]))
    cols = layout_columns(layout)
    big = read_all(path, cols, exp["record_length"])
    small = read_all(path, cols, exp["record_length"], block_size=block_size)
    assert small[1].equals(big[1])
    assert small[2] == big[2]
    assert small[3] == big[3]
    assert small[0].rejected == big[0].rejected
    if block_size < exp["record_length"]:
        assert small[0].batches > 1


SMALL = columns_from_widths([("ID", "CHAR", 4), ("N", "NUM", 3), ("D", "DATE", 8), ("AMT", "NUM", 7, 2), ("F", "CHAR", 1)])
SMALL_RL = 23


def write(tmp_path: Path, content: bytes, name: str = "x.dat") -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


GOOD = [b"A1    520110102  12.50Y", b"B2   -120120229    -.5 ", b"    +1220110131      3N", b"C4    2           7.00Y"]


def test_typed_columns_and_values(tmp_path):
    stats, table, numbers, rejects = read_all(write(tmp_path, b"\n".join(GOOD) + b"\n"), SMALL, SMALL_RL)
    assert rejects == [] and numbers == [1, 2, 3, 4]
    assert table.schema == arrow_schema(SMALL, SMALL_RL)
    assert [f.type for f in table.schema] == [pa.string(), pa.int64(), pa.date32(), pa.decimal128(7, 2), pa.string()]
    assert table.to_pylist() == [
        {"ID": "A1", "N": 5, "D": dt.date(2011, 1, 2), "AMT": Decimal("12.50"), "F": "Y"},
        {"ID": "B2", "N": -1, "D": dt.date(2012, 2, 29), "AMT": Decimal("-0.50"), "F": None},
        {"ID": None, "N": 12, "D": dt.date(2011, 1, 31), "AMT": Decimal("3.00"), "F": "N"},
        {"ID": "C4", "N": 2, "D": None, "AMT": Decimal("7.00"), "F": "Y"},
    ]
    assert stats.terminator == "LF"
    csv = batch_to_csv(table).decode()
    assert csv.splitlines()[0] == '"A1","5","2011-01-02","12.50","Y"'
    assert csv.splitlines()[2] == ',"12","2011-01-31","3.00","N"'
    assert csv.splitlines()[3] == '"C4","2",,"7.00","Y"'


@pytest.mark.parametrize(("line", "reason", "kind"), [
    (b"A1   1O20110102  12.50Y", "bad_value:N:1O", "non_numeric"),
    (b"A1    520110229  12.50Y", "bad_value:D:20110229", "invalid_date"),
    (b"A1    520111301  12.50Y", "bad_value:D:20111301", "invalid_date"),
    (b"A1    52011010X  12.50Y", "bad_value:D:2011010X", "invalid_date"),
    (b"A1    520110102 12.505Y", "bad_value:AMT:12.505", "non_numeric"),
    (b"A1    520110102 1.2.50Y", "bad_value:AMT:1.2.50", "non_numeric"),
    (b"A1  0x520110102  12.50Y", "bad_value:N:0x5", "non_numeric"),
    (b"A1  1 520110102  12.50Y", "bad_value:N:1 5", "non_numeric"),
    (b"A1   - 20110102  1E+05Y", "bad_value:N:-; bad_value:AMT:1E+05", "non_numeric"),
])
def test_bad_values_reject_only_their_record(tmp_path, line, reason, kind):
    content = b"\r\n".join([GOOD[0], line, GOOD[2]]) + b"\r\n"
    stats, table, numbers, rejects = read_all(write(tmp_path, content), SMALL, SMALL_RL)
    assert numbers == [1, 3] and table.num_rows == 2
    assert [(r.record, r.reason, r.kind, r.raw) for r in rejects] == [(2, reason, kind, line)]
    assert stats.terminator == "CRLF" and stats.rejected == {kind: 1}


def test_file_without_final_newline(tmp_path):
    stats, table, numbers, _ = read_all(write(tmp_path, b"\r\n".join(GOOD)), SMALL, SMALL_RL, block_size=10)
    assert numbers == [1, 2, 3, 4] and stats.good == 4 and stats.terminator == "CRLF"
    # a short last line without newline is still a reject, with its number
    stats, _, numbers, rejects = read_all(write(tmp_path, b"\n".join([*GOOD, b"D5   3"])), SMALL, SMALL_RL)
    assert numbers == [1, 2, 3, 4] and [(r.record, r.kind, r.raw) for r in rejects] == [(5, "short_record", b"D5   3")]


def test_sandbox_file_without_final_newline(tiny_sandbox, tmp_path):
    exp = expected(tiny_sandbox, 2011, "mbsf_ab_summary")
    src = tiny_sandbox / next(iter(exp["data"]))
    data = src.read_bytes()
    assert data.endswith(b"\r\n")
    cols = layout_columns(mbsf_ab_layout())
    a = read_all(src, cols, exp["record_length"])
    b = read_all(write(tmp_path, data[:-2]), cols, exp["record_length"], block_size=1000)
    assert a[1].equals(b[1]) and a[2] == b[2] and a[3] == b[3]


def test_records_without_terminator(tmp_path):
    stats, table, numbers, rejects = read_all(write(tmp_path, b"".join(GOOD) + b"E5 "), SMALL, SMALL_RL, block_size=30)
    assert stats.terminator == "none"
    assert numbers == [1, 2, 3, 4] and table.column("ID").to_pylist() == ["A1", "B2", None, "C4"]
    assert [(r.record, r.kind) for r in rejects] == [(5, "short_record")]


def test_only_bad_records(tmp_path):
    content = b"\n".join([b"short", GOOD[0] + b"toolong", GOOD[0].replace(b"5", b"X", 1)]) + b"\n"
    stats, table, numbers, rejects = read_all(write(tmp_path, content), SMALL, SMALL_RL)
    assert table.num_rows == 0 and table.schema == arrow_schema(SMALL, SMALL_RL) and numbers == []
    assert [r.kind for r in rejects] == ["short_record", "long_record", "non_numeric"]
    assert stats.records == 3 and stats.good == 0 and stats.reject_lengths == {5: 1, 30: 1}


def test_empty_lines_are_counted_not_records(tmp_path):
    stats, _, numbers, rejects = read_all(write(tmp_path, GOOD[0] + b"\n\n" + GOOD[1] + b"\n\n"), SMALL, SMALL_RL)
    assert numbers == [1, 3] and rejects == [] and stats.empty_lines == 2 and stats.records == 2


def test_non_ascii_is_kept_as_latin1_and_counted(tmp_path):
    line = b"\xe9t\xe9   520110102  12.50Y"
    stats, table, _, rejects = read_all(write(tmp_path, GOOD[0] + b"\n" + line + b"\n"), SMALL, SMALL_RL)
    assert rejects == [] and table.column("ID").to_pylist() == ["A1", "été"]
    assert stats.non_ascii_values == 1
    bad = b"A1    \xb920110102  12.50Y"  # a non-ASCII byte in a NUM column is a bad value
    _, table, _, rejects = read_all(write(tmp_path, bad + b"\n"), SMALL, SMALL_RL)
    assert table.num_rows == 0 and rejects[0].kind == "non_numeric" and rejects[0].raw == bad


def test_empty_and_missing_files_are_clear_errors(tmp_path):
    empty = write(tmp_path, b"", "empty.dat")
    with pytest.raises(FwfError, match=r"empty\.dat.*empty"):
        list(read_fwf(empty, SMALL, SMALL_RL))
    with pytest.raises(FwfError, match=r"missing\.dat.*not found"):
        list(read_fwf(tmp_path / "missing.dat", SMALL, SMALL_RL))


def test_layout_errors_name_the_column():
    with pytest.raises(FwfError, match="AMT.*outside the record length"):
        read_fwf("x.dat", SMALL, 20)
    with pytest.raises(FwfError, match="type 'TEXT'"):
        read_fwf("x.dat", [FwfColumn("A", "TEXT", 3)], 3)
    with pytest.raises(FwfError, match="A appears twice"):
        read_fwf("x.dat", [FwfColumn("A", "CHAR", 1), FwfColumn("A", "CHAR", 1, offset=1)], 2)


# --------------------------------------------------------------------------------- COPY text output

_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r", "\\042": '"'}


def copy_rows(path, columns, record_length, **kw):
    """The COPY text blocks parsed back: ([record_number, value or None, ...] per row, rejects, stats)."""
    import re

    reader = read_fwf(path, columns, record_length, **kw)
    rows, rejects = [], []
    for block in reader.copy_blocks():
        text = bytes(block.data).decode("utf-8")
        lines = text.split("\n")
        assert lines[-1] == "" and len(lines) - 1 == block.rows
        for line in lines[:-1]:
            fields = line.split("\t")
            assert len(fields) == len(columns) + 1
            rows.append([None if f == "" else re.sub(r"\\(\\|t|n|r|042)", lambda m: _UNESCAPE[m.group(0)], f)
                         for f in fields])
        rejects += block.rejects
    return rows, rejects, reader.stats


def as_typed(column, text):
    """A COPY text value read the way PostgreSQL's input functions read it."""
    if text is None or column.type == "CHAR":
        return text
    if column.type == "DATE":
        return dt.datetime.strptime(text, "%Y%m%d").date()
    return Decimal(text) if column.scale or column.width > 18 else int(text)


@pytest.mark.parametrize("block_size", [4 << 20, 1000])
@pytest.mark.parametrize(("year", "kind", "layout"), FILES, ids=[f"{y}-{k}" for y, k, _ in FILES])
def test_copy_text_holds_the_same_rows_and_rejects_as_the_typed_batches(tiny_sandbox, year, kind, layout, block_size):
    exp = expected(tiny_sandbox, year, kind)
    cols = layout_columns(layout)
    for rel in exp["data"]:
        stats, table, numbers, rejects = read_all(tiny_sandbox / rel, cols, exp["record_length"], block_size=block_size)
        rows, copy_rejects, copy_stats = copy_rows(tiny_sandbox / rel, cols, exp["record_length"], block_size=block_size)
        assert [int(r[0]) for r in rows] == numbers
        assert copy_rejects == rejects and copy_stats.rejected == stats.rejected and copy_stats.good == stats.good
        typed = table.to_pylist()
        for got, want in zip(rows, typed, strict=True):
            assert [as_typed(c, v) for c, v in zip(cols, got[1:], strict=True)] == [want[c.name] for c in cols]


def test_copy_text_escapes_what_postgresql_text_format_would_misread(tmp_path):
    def record(id_: bytes, f: bytes, amt: bytes = b"12.50") -> bytes:
        return id_.ljust(4) + b"  7" + b"20110102" + amt.rjust(7) + f

    line = record(b"a\\\tb", b'"', b"1.5")  # a backslash and a tab inside ID, a quote in F
    cr = record(b"C\rD", b"Y")  # a CR inside a value (an LF file)
    tail = record(b"E\t\t", b"\t")  # trailing tabs are blanks (trimmed); a 1-byte tab is a value
    path = write(tmp_path, b"\n".join([GOOD[0], line, cr, tail]) + b"\n")
    (block,) = read_fwf(path, SMALL, SMALL_RL).copy_blocks()
    assert bytes(block.data).split(b"\n")[1:4] == [
        b"2\ta" + b"\\\\" + b"\\t" + b"b\t7\t20110102\t1.5\t\\042",
        b"3\tC\\rD\t7\t20110102\t12.50\tY",
        b"4\tE\t7\t20110102\t12.50\t\\t",
    ]
    rows, _, _ = copy_rows(path, SMALL, SMALL_RL)
    _, table, _, _ = read_all(path, SMALL, SMALL_RL)
    assert [[as_typed(c, v) for c, v in zip(SMALL, r[1:], strict=True)] for r in rows] == \
        [list(row.values()) for row in table.to_pylist()]  # the escapes read back to the values


@pytest.mark.parametrize("copy", [False, True], ids=["typed", "copy-text"])
def test_non_ascii_can_reject_the_record_with_its_bytes_shown(tmp_path, copy):
    line = b"\xe9t\xe9   520110102  12.50Y"
    path = write(tmp_path, GOOD[0] + b"\n" + line + b"\n" + GOOD[1] + b"\n")
    if copy:
        rows, rejects, stats = copy_rows(path, SMALL, SMALL_RL, non_ascii="reject")
        assert [r[0] for r in rows] == ["1", "3"]
    else:
        stats, table, numbers, rejects = read_all(path, SMALL, SMALL_RL, non_ascii="reject")
        assert numbers == [1, 3] and table.column("ID").to_pylist() == ["A1", "B2"]
    assert [(r.record, r.kind, r.reason, r.raw) for r in rejects] == [(2, "non_ascii", r"non_ascii:ID:\xe9t\xe9", line)]
    assert stats.rejected == {"non_ascii": 1} and stats.non_ascii_values == 1


def test_copy_text_keeps_latin1_by_default_and_rejects_nul_bytes(tmp_path):
    nul = b"N\x00L   520110102  12.50Y"
    path = write(tmp_path, b"\n".join([GOOD[0], b"\xe9t\xe9   520110102  12.50Y", nul, GOOD[0][:4] + b" \x005" + GOOD[0][7:]]) + b"\n")
    rows, rejects, stats = copy_rows(path, SMALL, SMALL_RL)
    assert [r[:2] for r in rows] == [["1", "A1"], ["2", "été"]]  # latin-1, sent to PostgreSQL as UTF-8
    assert [(r.record, r.kind, r.reason) for r in rejects] == [
        (3, "nul_byte", r"nul_byte:ID:N\x00L"), (4, "non_numeric", r"bad_value:N:\x005")]
    assert stats.rejected == {"nul_byte": 1, "non_numeric": 1}


def test_an_unknown_non_ascii_policy_is_refused():
    with pytest.raises(FwfError, match="non_ascii must be one of latin1, reject"):
        read_fwf("x.dat", SMALL, SMALL_RL, non_ascii="utf-8")
