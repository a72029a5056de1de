"""SAS7BDAT files: the real fixtures written by SAS (../shared/fixtures/sas7bdat, test inputs only)
and the sandbox's 1999-2010 files, read in chunks and loaded into medicare_raw."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from psycopg import sql

from include.fts_parsers.sas7bdat import SasReadError, iter_sas_batches, read_sas_layout, sql_name
from include.medicare import ingest

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "sas7bdat"


def read_all(path, chunk_rows=100_000):
    layout = read_sas_layout(path)
    numbers, tables = [], []
    for rn, t in iter_sas_batches(path, layout, chunk_rows=chunk_rows):
        numbers += rn.to_pylist()
        tables.append(t)
    return layout, numbers, pa.concat_tables(tables)


def test_real_files_written_by_sas():
    layout, numbers, t = read_all(FIXTURES / "sample.sas7bdat")
    assert t.num_rows == 5 and numbers == [1, 2, 3, 4, 5]
    kinds = {c.name: c.kind for c in layout.columns}
    assert kinds == {"mychar": "text", "mynum": "numeric", "mydate": "date", "dtime": "datetime", "mylabl": "numeric",
                     "myord": "numeric", "mytime": "time"}
    first = t.slice(0, 1).to_pylist()[0]
    assert first["mydate"] == dt.date(2018, 5, 6) and first["dtime"] == dt.datetime(2018, 5, 6, 10, 10, 10)
    assert first["mytime"] == dt.time(10, 10, 10) and first["mychar"] == "a"
    assert t.column("mydate").to_pylist()[1] == dt.date(1880, 5, 6), "dates before 1960 (negative SAS days)"

    layout, _, t = read_all(FIXTURES / "dates.sas7bdat", chunk_rows=7)
    assert t.num_rows == 50 and [c.kind for c in layout.columns] == ["date", "datetime", "time"]

    layout, _, t = read_all(FIXTURES / "test_file_label_win.sas7bdat")
    assert layout.encoding == "WINDOWS-1252" and layout.file_label == "mytest label"
    assert t.column("id").to_pylist() == ["ID1", "ID2", "ID3"]


@pytest.mark.parametrize("year", [2005, 2010])
def test_sandbox_files_chunked_and_loaded(pg, tiny_sandbox, year):
    expected = json.loads((tiny_sandbox / "expected" / f"medicare_{year}.json").read_text())
    folder = tiny_sandbox / "restricted" / "medicare" / str(year)
    files = ingest.find_sas_files(folder)
    assert [p.parent.name for p in files] == ["denominator", "inpatient"]
    ingest.ensure_schema(pg)
    for path in files:
        kind = path.parent.name
        want = expected["files"][kind]["records"]
        _, numbers, big = read_all(path)
        _, _, small = read_all(path, chunk_rows=7)
        assert big.equals(small) and numbers == list(range(1, want + 1))
        result = ingest.load_sas(pg, path, year, force=True)
        assert (result.status, result.rows) == ("loaded", want)
        table = sql.Identifier("medicare_raw", result.table)
        years = pg.execute(sql.SQL("SELECT DISTINCT year FROM {}").format(table)).fetchall()
        if year <= 2005 and kind == "denominator":
            assert years == [(year % 100,)], "2-digit years are kept raw (the processing conditions them)"
        else:
            assert years == [(year,)]  # a real year column, or the folder's year for a file without one
        assert pg.execute(sql.SQL("SELECT count(bene_id), count(state) FROM {}").format(table)).fetchone() == (want, want)
        assert ingest.load_sas(pg, path, year).status == "skipped"
    pg.rollback()


def test_bad_sas_files_give_clear_errors(tmp_path, tiny_sandbox):
    source = ingest.find_sas_files(tiny_sandbox / "restricted" / "medicare" / "2010")[0]
    empty = tmp_path / "empty.sas7bdat"
    empty.write_bytes(b"")
    with pytest.raises(SasReadError, match="empty file"):
        read_sas_layout(empty)
    not_sas = tmp_path / "notes.sas7bdat"
    not_sas.write_text("this is not SAS\n" * 100)
    with pytest.raises(SasReadError, match="not a readable SAS7BDAT"):
        read_sas_layout(not_sas)
    truncated = tmp_path / "truncated.sas7bdat"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(SasReadError, match="truncated"):
        layout = read_sas_layout(truncated)
        for _ in iter_sas_batches(truncated, layout):
            pass


def test_names_are_normalised_the_nsaph_way():
    seen: dict[str, int] = {}
    assert [sql_name(n, seen, i) for i, n in enumerate(["2ndValue", "A.B C", "a_b_c", "", "BENE_ID"])] == \
        ["c_2ndvalue", "a_b_c", "a_b_c_001", "col003", "bene_id"]
