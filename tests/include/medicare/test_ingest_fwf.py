"""Fixed-width Medicare files of the sandbox loaded into PostgreSQL: exact counts against the sandbox's
expected files, every row traceable to file + record number, rejects kept, a rerun skipped."""

from __future__ import annotations

import json

import pytest
from psycopg import sql

from include.fts_parsers.fts import find_fts_files, parse_fts
from include.medicare import ingest


@pytest.mark.parametrize("year", [2011, 2015])
def test_a_year_loads_with_exact_counts_and_traceable_rows(raw_db, tiny_sandbox, year):
    expected = json.loads((tiny_sandbox / "expected" / f"medicare_{year}.json").read_text())
    files = find_fts_files(tiny_sandbox / "restricted" / "medicare" / str(year))
    assert {f.base.split("_res")[0] for f in files} == set(expected["files"])
    for fts_file in files:
        kind = fts_file.base.split("_res")[0]
        want = expected["files"][kind]
        layout = parse_fts(fts_file.fts)
        ingest.store_layout(raw_db, fts_file, layout)
        result = ingest.load_fwf(raw_db, fts_file, layout, block_size=64 << 10)
        assert (result.status, result.rows, result.rejected) == ("loaded", want["loaded"], sum(want["rejects"].values()))
        assert result.rejected_by_kind == want["rejects"]
        table = sql.Identifier("medicare_raw", fts_file.table)
        count, distinct = raw_db.execute(sql.SQL(
            "SELECT count(*), count(DISTINCT (source_file, record_number)) FROM {}").format(table)).fetchone()
        assert count == distinct == want["loaded"]
        rejects = raw_db.execute("SELECT count(*) FROM medicare_raw.ingest_rejects WHERE table_name = %s",
                                 (fts_file.table,)).fetchone()[0]
        assert rejects + count == want["records"], "every record is in its table or in the rejects"
        # trace a row back to the bytes of its file
        source_file, record_number, bene = raw_db.execute(sql.SQL(
            "SELECT source_file, record_number, bene_id FROM {} ORDER BY source_file DESC, record_number DESC "
            "LIMIT 1").format(table)).fetchone()
        line = (fts_file.fts.parent / source_file).read_bytes().splitlines()[record_number - 1]
        assert line[:15].decode().strip() == bene
        uniform = raw_db.execute(sql.SQL("SELECT count(year), count(state), count(zip) FROM {}").format(table)).fetchone()
        if kind != "mbsf_d_cmpnts":
            assert uniform == (count, count, count)
            assert raw_db.execute(sql.SQL("SELECT DISTINCT year FROM {}").format(table)).fetchall() == [(year,)]
        stored = ingest.stored_layout(raw_db, fts_file.table)
        assert stored is not None and stored.record_length == layout.record_length
    # a second run finds the same files loaded
    for fts_file in files:
        again = ingest.load_fwf(raw_db, fts_file, parse_fts(fts_file.fts))
        assert again.status == "skipped"


def test_a_changed_file_replaces_its_table(raw_db, sandbox_copy):
    folder = sandbox_copy / "restricted" / "medicare" / "2011"
    fts_file = next(f for f in find_fts_files(folder) if f.base.startswith("mbsf_ab_summary"))
    layout = parse_fts(fts_file.fts)
    first = ingest.load_fwf(raw_db, fts_file, layout)
    data = fts_file.data[0]
    lines = data.read_bytes().split(b"\r\n")
    data.write_bytes(b"\r\n".join(lines[:10] + [b""]))  # the file shrinks to its first 10 records
    second = ingest.load_fwf(raw_db, fts_file, layout)
    assert second.status == "loaded" and second.rows + second.rejected == 10 < first.rows
    table = sql.Identifier("medicare_raw", fts_file.table)
    assert raw_db.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0] == second.rows
    n_loads = raw_db.execute("SELECT count(*) FROM claimsflow_meta.load_manifest WHERE target = %s AND status = 'done'",
                             (f"medicare_raw.{fts_file.table}",)).fetchone()[0]
    assert n_loads == 2
