"""The parquet export of a year's enriched edges: exactly the rows and columns of the view
hop.edges_enriched for the year, built without asking PostgreSQL to join and print ~200M wide rows.

The view joins the compact scored edges (`hop.edges`) to both ends' facts (`hop.npis`, ~2M rows a year)
and the year's source file (`hop.loads`). Here the year's NPI facts are read once into an Arrow table
sorted by NPI; the edges are streamed with `COPY … TO STDOUT (FORMAT csv)` through pyarrow's streaming
CSV reader, and each block gets both ends' facts by a hash lookup (pandas' Index) and `take`,
then goes to a ParquetWriter. Memory: the NPI facts plus a block or two of edges, at any number of
edges. The column list and types are the view's (information_schema): a view column that is neither an
edge column, the source file, nor `from_` / `to_` + an NPI fact column is refused, so the two cannot
drift apart silently.

Row order: the edges partition's physical order (synchronized scans off, so the scan starts at the
first block): checks.sql writes it sorted by the unordered NPI pair, so an edge and its reverse edge are
neighbours, and a rerun of the same file writes the same order. Written to a temporary name and renamed
into place.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from include.hop_teaming.load import HopTeamingError

ARROW_TYPES = {"bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(), "double precision": pa.float64(),
               "real": pa.float32(), "numeric": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}
SIDES = ("from", "to")


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, pa.DataType]]:
    rows = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                        "AND table_name = %s ORDER BY ordinal_position", (schema, table)).fetchall()
    if not rows:
        raise LookupError(f"no table {schema}.{table}")
    return [(name, ARROW_TYPES.get(data_type, pa.string())) for name, data_type in rows]


def _plan(view: list[tuple[str, pa.DataType]], edge_columns: set[str], npi_columns: set[str]):
    """Where each view column comes from: ("edge", name) | ("source_file", None) | (side, npi column)."""
    plan = []
    for name, _ in view:
        if name in edge_columns:
            plan.append(("edge", name))
        elif name == "source_file":
            plan.append(("source_file", None))
        elif (side := name.split("_", 1)[0]) in SIDES and name.split("_", 1)[1] in npi_columns - {"npi", "year"}:
            plan.append((side, name.split("_", 1)[1]))
        else:
            raise HopTeamingError(f"hop.edges_enriched has column {name!r}, which the parquet export cannot build "
                                  "(include/hop_teaming/export.py)", source="hop.edges_enriched")
    return plan


@contextmanager
def _copy_out(conn: psycopg.Connection, query: sql.Composable) -> Iterator[BinaryIO]:
    """A readable stream of `COPY (query) TO STDOUT (FORMAT csv)`, fed by a thread through a pipe so
    pyarrow parses while PostgreSQL sends. A failed COPY is raised after the stream ends (what was read
    is then not to be used); a reader that stops early closes the pipe, which ends the COPY."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink, conn.cursor() as cur, \
                    cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
                for data in copy:
                    sink.write(data)
        except BaseException as exc:
            failure.append(exc)

    producer = threading.Thread(target=produce, name="hop-export-copy", daemon=True)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            yield source
    finally:
        producer.join()
    if failure:
        raise failure[0]


# NPI facts with a value per provider: kept as plain strings. Every other text fact (entity type, state,
# zip, taxonomy and its NUCC names, ...) has few distinct values and is read dictionary-encoded: each
# edge then takes a small integer instead of a copy of the text, and a year's ~9M NPIs fit in a
# fraction of the memory (parquet stores both forms as the same strings).
PER_PROVIDER_FACTS = frozenset({"name"})
# CSV blocks parsed at a time (the tests make them tiny, so that a small year spans many blocks).
NPI_BLOCK_BYTES = 16 << 20
EDGE_BLOCK_BYTES = 8 << 20


def _read_npis(conn: psycopg.Connection, year: int, columns: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    """The year's NPI facts (`npi` first), sorted by NPI, the text facts other than PER_PROVIDER_FACTS
    dictionary-encoded as they are read (one dictionary per column)."""
    query = sql.SQL("SELECT {} FROM hop.npis WHERE year = {} ORDER BY npi").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Literal(int(year)))
    read_types = {c: pa.dictionary(pa.int32(), t) if pa.types.is_string(t) and c not in PER_PROVIDER_FACTS else t
                  for c, t in types.items()}
    # Streamed block by block (the whole-file reader holds all of COPY's text until it is done).
    with _copy_out(conn, query) as source:
        reader = pacsv.open_csv(source, read_options=pacsv.ReadOptions(column_names=columns, block_size=NPI_BLOCK_BYTES),
                                convert_options=pacsv.ConvertOptions(column_types=read_types, strings_can_be_null=True))
        table = pa.Table.from_batches(list(reader), schema=reader.schema)
    # One column at a time into one array (each block has its own dictionary): the blocks' buffers of
    # a column are released before the next is copied, so the peak is the table plus one column.
    columns_out = {}
    for name in table.column_names:
        column = table.column(name)
        table = table.drop_columns([name])
        if pa.types.is_dictionary(column.type):
            column = column.unify_dictionaries()
        columns_out[name] = column.combine_chunks()
    return pa.table(columns_out)


def edges_parquet(conn: psycopg.Connection, year: int, out_dir: Path) -> Path:
    """`<out_dir>/edges_enriched_<year>.parquet`: the year's rows of the view hop.edges_enriched."""
    y = int(year)
    view = _columns(conn, "hop", "edges_enriched")
    edge_columns = [n for n, _ in _columns(conn, "hop", "edges")]
    npi_columns = [n for n, _ in _columns(conn, "hop", "npis")]
    loaded = conn.execute("SELECT source_file FROM hop.loads WHERE year = %s", (y,)).fetchone()
    conn.rollback()
    if loaded is None:
        raise HopTeamingError(f"year {y} is not published (no hop.loads row)", source="hop.loads")
    types = dict(view)
    plan = _plan(view, set(edge_columns), set(npi_columns))
    wanted_edges = [c for kind, c in plan if kind == "edge"]
    for side in SIDES:  # both ends are looked up, whether or not the view shows them
        if f"{side}_npi" not in wanted_edges:
            wanted_edges.append(f"{side}_npi")
    facts = sorted({c for kind, c in plan if kind in SIDES})
    fact_types = {"npi": pa.int64()}
    for kind, c in plan:
        if kind in SIDES:
            fact_types[c] = types[f"{kind}_{c}"]
    npis = _read_npis(conn, y, ["npi", *facts], fact_types)
    index = pd.Index(npis.column("npi").to_numpy())  # a hash lookup: NPI -> row
    fact_arrays = {c: npis.column(c).chunk(0) for c in facts}  # _read_npis combined each column into one chunk
    del npis
    schema = pa.schema([(name, fact_arrays[c].type if kind in SIDES else t)
                        for (kind, c), (name, t) in zip(plan, view, strict=True)])

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"edges_enriched_{y}.parquet"
    tmp = target.with_name(f".{target.name}.partial")

    def positions(batch: pa.RecordBatch, side: str) -> pa.Array:
        at = index.get_indexer(batch.column(f"{side}_npi").to_numpy(zero_copy_only=False))
        if (at < 0).any():
            raise HopTeamingError(f"year {y}: an edge's {side}_npi is not among the year's hop.npis",
                                  source="hop.edges")
        return pa.array(at)

    conn.execute("SET LOCAL synchronize_seqscans = off")  # the scan starts at block 0: see the row order above
    query = sql.SQL("SELECT {} FROM hop.edges WHERE year = {}").format(
        sql.SQL(", ").join(map(sql.Identifier, wanted_edges)), sql.Literal(y))
    try:
        with _copy_out(conn, query) as source:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=wanted_edges, block_size=EDGE_BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(column_types={c: types.get(c, pa.int64()) for c in wanted_edges},
                                                     strings_can_be_null=True),
            )
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in reader:
                    at = {side: positions(batch, side) for side in SIDES}
                    arrays = []
                    for (kind, c), (name, _) in zip(plan, view, strict=True):
                        if kind == "edge":
                            arrays.append(batch.column(c))
                        elif kind == "source_file":
                            arrays.append(pa.array([loaded[0]] * batch.num_rows, types[name]))
                        else:
                            arrays.append(fact_arrays[c].take(at[kind]))
                    writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    conn.commit()
    os.replace(tmp, target)
    return target
