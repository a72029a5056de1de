"""The parquet export of a year's enriched edges, streamed: PostgreSQL's `COPY … TO STDOUT (FORMAT csv)`
feeds a pipe that pyarrow's streaming CSV reader parses block by block into a ParquetWriter, so memory
stays flat at any number of edges. Written to a temporary name and renamed into place."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

ARROW_TYPES = {"bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(), "double precision": pa.float64(),
               "real": pa.float32(), "numeric": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, pa.DataType]]:
    rows = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                        "AND table_name = %s ORDER BY ordinal_position", (schema, table)).fetchall()
    if not rows:
        raise LookupError(f"no table {schema}.{table}")
    return [(name, ARROW_TYPES.get(data_type, pa.string())) for name, data_type in rows]


def edges_parquet(conn: psycopg.Connection, year: int, out_dir: Path) -> Path:
    """`<out_dir>/edges_enriched_<year>.parquet` from the view hop.edges_enriched."""
    columns = _columns(conn, "hop", "edges_enriched")
    conn.rollback()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"edges_enriched_{int(year)}.parquet"
    tmp = target.with_name(f".{target.name}.partial")
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink, conn.cursor() as cur:
                stmt = sql.SQL("COPY (SELECT * FROM hop.edges_enriched WHERE year = {} ORDER BY from_npi, to_npi) "
                               "TO STDOUT (FORMAT csv)").format(sql.Literal(int(year)))
                with cur.copy(stmt) as copy:
                    for data in copy:
                        sink.write(data)
        except BaseException as exc:
            failure.append(exc)

    producer = threading.Thread(target=produce, name="hop-export-copy", daemon=True)
    producer.start()
    schema = pa.schema(columns)
    try:
        with os.fdopen(read_fd, "rb") as source:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=[n for n, _ in columns], block_size=8 << 20),
                convert_options=pacsv.ConvertOptions(column_types=dict(columns), strings_can_be_null=True),
            )
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        producer.join()
    if failure:
        tmp.unlink(missing_ok=True)
        raise failure[0]
    conn.commit()
    os.replace(tmp, target)
    return target
