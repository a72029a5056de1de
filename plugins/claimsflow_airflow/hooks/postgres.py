"""The claimsflow database hook: the providers' PostgresHook on `claimsflow_db`, with COPY streaming."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from airflow.providers.postgres.hooks.postgres import PostgresHook

from include.db.postgres import TableName, copy_rows


class ClaimsflowPostgresHook(PostgresHook):
    """PostgresHook whose default connection is `claimsflow_db` and whose connections are psycopg 3.

    The domain code takes a plain psycopg connection; this hook only opens it from the Airflow
    connection (credentials stay in the connection, never in code or logs).
    """

    default_conn_name = "claimsflow_db"
    hook_name = "claimsflow PostgreSQL"

    @contextmanager
    def pg_connection(self) -> Iterator[psycopg.Connection]:
        """A psycopg 3 connection in a transaction (autocommit off), closed afterwards."""
        conn = self.get_conn()
        if not isinstance(conn, psycopg.Connection):
            conn.close()
            raise RuntimeError("claimsflow needs psycopg 3 with SQLAlchemy 2 (see requirements.txt)")
        conn.autocommit = False
        try:
            yield conn
        finally:
            conn.close()

    def copy_rows(self, table: TableName, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Stream rows into a table with COPY in one transaction; returns the row count."""
        with self.pg_connection() as conn:
            count = copy_rows(conn, table, columns, rows)
            conn.commit()
        return count
