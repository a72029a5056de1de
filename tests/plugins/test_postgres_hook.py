"""The Airflow hook opens psycopg 3 connections from the `claimsflow_db` connection."""

from __future__ import annotations

import psycopg
from psycopg import sql

from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook


def test_default_connection_is_claimsflow_db():
    hook = ClaimsflowPostgresHook()
    assert hook.postgres_conn_id == "claimsflow_db"


def test_copy_rows_through_the_airflow_connection(pg, scratch_schema):
    pg.execute(sql.SQL("CREATE TABLE {} (npi text, n int)").format(sql.Identifier(scratch_schema, "t")))
    pg.commit()
    hook = ClaimsflowPostgresHook()
    assert hook.copy_rows((scratch_schema, "t"), ["npi", "n"], ((f"{i:010d}", i) for i in range(1000))) == 1000
    count, total = pg.execute(sql.SQL("SELECT count(*), sum(n) FROM {}").format(sql.Identifier(scratch_schema, "t"))).fetchone()
    assert (count, total) == (1000, sum(range(1000)))


def test_pg_connection_is_transactional_and_closed():
    hook = ClaimsflowPostgresHook()
    with hook.pg_connection() as conn:
        assert isinstance(conn, psycopg.Connection)
        assert conn.autocommit is False
        assert conn.execute("SELECT current_database()").fetchone()[0] == "claimsflow_test"
    assert conn.closed
