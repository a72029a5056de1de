"""COPY streaming and atomic replacement against the real test PostgreSQL."""

from __future__ import annotations

import pytest
from psycopg import sql

from include.common.errors import DatabaseError
from include.db.postgres import copy_rows, copy_text, replacing_table, run_sql_file

AWKWARD = [
    (1, "plain", 1.5),
    (2, None, None),
    (3, "tab\there, newline\nthere, backslash \\N, quote \" and ' comma,", -0.0),
    (4, "ünïcödé — 医保", 1e300),
    (5, "", 0.0),
]


def _create(pg, schema, table="t"):
    pg.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, label text, amount double precision)").format(
        sql.Identifier(schema, table)))


def test_copy_rows_round_trips_awkward_values(pg, scratch_schema):
    _create(pg, scratch_schema)
    rows = (row for row in AWKWARD)  # a generator: COPY must consume it lazily
    assert copy_rows(pg, (scratch_schema, "t"), ["id", "label", "amount"], rows) == len(AWKWARD)
    back = pg.execute(sql.SQL("SELECT id, label, amount FROM {} ORDER BY id").format(
        sql.Identifier(scratch_schema, "t"))).fetchall()
    assert back == AWKWARD


def test_copy_error_names_the_table_and_rows_done(pg, scratch_schema):
    _create(pg, scratch_schema)
    with pytest.raises(DatabaseError) as err:
        copy_rows(pg, (scratch_schema, "t"), ["id", "label", "amount"], [(1, "a", 1.0), (1, "duplicate", 2.0)])
    assert f"{scratch_schema}.t" in str(err.value)


def test_copy_text_streams_csv_chunks(pg, scratch_schema):
    _create(pg, scratch_schema)
    chunks = [b'id,label,amount\n1,"a, with comma",1.25\n2,', b'"split across chunks",2\n3,,\n']
    n = copy_text(pg, (scratch_schema, "t"), ["id", "label", "amount"], chunks, header=True)
    assert n == 3
    back = pg.execute(sql.SQL("SELECT id, label, amount FROM {} ORDER BY id").format(
        sql.Identifier(scratch_schema, "t"))).fetchall()
    assert back == [(1, "a, with comma", 1.25), (2, "split across chunks", 2.0), (3, None, None)]


def test_replacing_table_swaps_in_the_new_content(pg, scratch_schema):
    _create(pg, scratch_schema, "npi")
    copy_rows(pg, (scratch_schema, "npi"), ["id", "label", "amount"], [(1, "old", 0.0)])
    pg.commit()
    with replacing_table(pg, scratch_schema, "npi") as staging:
        _create(pg, scratch_schema, staging)
        copy_rows(pg, (scratch_schema, staging), ["id", "label", "amount"], [(7, "new", 1.0), (8, "new", 2.0)])
    labels = pg.execute(sql.SQL("SELECT label FROM {}").format(sql.Identifier(scratch_schema, "npi"))).fetchall()
    assert labels == [("new",), ("new",)]
    leftovers = pg.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s", (scratch_schema, "%staging%")
    ).fetchone()[0]
    assert leftovers == 0


def test_a_failed_replacement_leaves_the_old_table_untouched(pg, scratch_schema):
    _create(pg, scratch_schema, "npi")
    copy_rows(pg, (scratch_schema, "npi"), ["id", "label", "amount"], [(1, "old", 0.0)])
    pg.commit()

    def rows():
        yield (7, "new", 1.0)
        raise OSError("source file truncated at line 2")

    with pytest.raises(OSError, match="truncated"):
        with replacing_table(pg, scratch_schema, "npi") as staging:
            _create(pg, scratch_schema, staging)
            copy_rows(pg, (scratch_schema, staging), ["id", "label", "amount"], rows())
    labels = pg.execute(sql.SQL("SELECT label FROM {}").format(sql.Identifier(scratch_schema, "npi"))).fetchall()
    assert labels == [("old",)]


def test_sql_file_errors_name_the_file(pg, tmp_path, monkeypatch):
    import include.db.postgres as pgmod

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.sql").write_text("SELEC 1")
    monkeypatch.setattr(pgmod, "SQL_DIR", tmp_path)
    with pytest.raises(DatabaseError, match=r"include/sql/broken/bad\.sql"):
        run_sql_file(pg, "broken/bad.sql")
