"""The maps' outputs, rebuilt from the caches (no API call): for the identifiers of the current input

- `output/npi.parquet`, `output/hcpcs.parquet` — one row per identifier, the seed's exact column order,
  nested structures as JSON text, the full payload in `response_json`;
- `mappings/npi/npi_provider_mapping.csv`, `mappings/hcpcs/hcpcs_code_mapping.csv` — flat columns a person reads;
- `unresolved_identifiers.csv` — everything not found: type, identifier, status (not_found, error,
  missing_cache, invalid), last fetch time, error message;
- tables `maps.npi` and `maps.hcpcs` (the flat columns) for the joins downstream, swapped in atomically.

Everything streams from a server-side cursor in batches (the NPI cache holds ~2M payloads of a few KB),
and every file is written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from include.db.postgres import copy_rows, read_sql, replacing_table

BATCH = 20_000
TIMESTAMP = pa.timestamp("us", tz="UTC")

NPI_PARQUET = pa.schema([
    ("npi", pa.string()),
    ("basic", pa.string()), ("addresses", pa.string()), ("practice_locations", pa.string()),
    ("taxonomies", pa.string()), ("identifiers", pa.string()), ("other_names", pa.string()),
    ("endpoints", pa.string()),
    ("url", pa.string()), ("error_message", pa.string()), ("api_run_id", pa.string()),
    ("requested_at_utc", TIMESTAMP), ("request_params", pa.string()), ("results", pa.int32()),
    ("response_json", pa.string()),
])
HCPCS_PARQUET = pa.schema([
    ("hcpcs_code", pa.string()),
    ("ef_short_desc", pa.string()), ("ef_long_desc", pa.string()), ("ef_add_dt", pa.string()),
    ("ef_act_eff_dt", pa.string()), ("ef_term_dt", pa.string()), ("ef_obsolete", pa.string()),
    ("ef_is_noc", pa.string()),
    ("response_codes", pa.string()), ("response_display", pa.string()), ("response_extra_fields", pa.string()),
    ("url", pa.string()), ("error_message", pa.string()), ("api_run_id", pa.string()),
    ("requested_at_utc", TIMESTAMP), ("request_params", pa.string()), ("response_json", pa.string()),
])
NPI_FLAT = ("npi", "status", "source", "enumeration_type", "provider_name", "credential", "npi_status",
            "enumeration_date", "deactivation_date", "primary_taxonomy_code", "primary_taxonomy_desc",
            "practice_state", "practice_postal_code", "practice_city", "requested_at_utc", "error_message")
HCPCS_FLAT = ("hcpcs_code", "status", "source", "short_desc", "long_desc", "add_dt", "act_eff_dt", "term_dt",
              "obsolete", "is_noc", "requested_at_utc", "error_message")
UNRESOLVED = ("type", "identifier", "status", "last_fetch_utc", "error_message")

NPI_TABLE_DDL = """CREATE TABLE maps.{} (npi text PRIMARY KEY, status text NOT NULL, source text,
    enumeration_type text, provider_name text, credential text, npi_status text, enumeration_date text,
    deactivation_date text, primary_taxonomy_code text, primary_taxonomy_desc text, practice_state text,
    practice_postal_code text, practice_city text, requested_at_utc timestamptz, error_message text)"""
HCPCS_TABLE_DDL = """CREATE TABLE maps.{} (hcpcs_code text PRIMARY KEY, status text NOT NULL, source text,
    short_desc text, long_desc text, add_dt text, act_eff_dt text, term_dt text, obsolete text, is_noc text,
    requested_at_utc timestamptz, error_message text)"""


@dataclass
class OutputPaths:
    root: Path  # the data root

    @property
    def npi_parquet(self) -> Path:
        return self.root / "output" / "npi.parquet"

    @property
    def hcpcs_parquet(self) -> Path:
        return self.root / "output" / "hcpcs.parquet"

    @property
    def npi_mapping(self) -> Path:
        return self.root / "mappings" / "npi" / "npi_provider_mapping.csv"

    @property
    def hcpcs_mapping(self) -> Path:
        return self.root / "mappings" / "hcpcs" / "hcpcs_code_mapping.csv"

    @property
    def unresolved(self) -> Path:
        return self.root / "unresolved_identifiers.csv"


@dataclass
class ExportStats:
    kind: str
    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _batches(conn: psycopg.Connection, query: str) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    with conn.cursor(name="maps_export") as cur:  # server-side: rows arrive BATCH at a time
        cur.itersize = BATCH
        cur.execute(query)
        names: list[str] | None = None
        while rows := cur.fetchmany(BATCH):
            if names is None:
                names = [d.name for d in cur.description]
            yield names, rows


def _export(conn: psycopg.Connection, kind: str, parquet_schema: pa.Schema, flat: tuple[str, ...], parquet_path: Path,
            mapping_path: Path, ddl: str, unresolved: list[tuple[Any, ...]]) -> ExportStats:
    stats = ExportStats(kind)
    tmp_parquet, tmp_mapping = _tmp(parquet_path), _tmp(mapping_path)
    writer = pq.ParquetWriter(tmp_parquet, parquet_schema, compression="zstd")
    with tmp_mapping.open("w", newline="", encoding="utf-8") as mapping_file, \
            replacing_table(conn, "maps", kind) as staging:
        conn.execute(sql.SQL(ddl).format(sql.Identifier(staging)))
        mapping = csv.writer(mapping_file)
        mapping.writerow(flat)
        # a second connection streams the cursor while this one COPYs into the staging table
        with psycopg.connect(conn.info.dsn, password=conn.info.password) as reader:
            for names, rows in _batches(reader, read_sql(f"maps/export_{kind}.sql")):
                columns = list(zip(*rows, strict=True))
                by_name = dict(zip(names, columns, strict=True))
                writer.write_table(pa.table({f.name: pa.array(by_name[f.name], f.type) for f in parquet_schema},
                                            schema=parquet_schema))
                flat_rows = list(zip(*(by_name[c] if c in by_name else by_name[f"ef_{c}"] for c in flat),
                                     strict=True))
                mapping.writerows(_csv_row(r) for r in flat_rows)
                copy_rows(conn, ("maps", staging), flat, flat_rows)
                for r in flat_rows:
                    status = r[1]
                    stats.by_status[status] = stats.by_status.get(status, 0) + 1
                    if status != "found":
                        unresolved.append((kind, r[0], status, r[-2], r[-1]))
                stats.rows += len(rows)
        conn.execute(sql.SQL("ANALYZE maps.{}").format(sql.Identifier(staging)))
        writer.close()
    tmp_parquet.replace(parquet_path)
    tmp_mapping.replace(mapping_path)
    stats.files = [str(parquet_path), str(mapping_path)]
    return stats


def _csv_row(row: tuple[Any, ...]) -> list[Any]:
    return ["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else v) for v in row]


def export_all(conn: psycopg.Connection, data_root: str | Path, kinds: tuple[str, ...] = ("npi", "hcpcs")) -> dict[str, Any]:
    """Rebuild every output of `kinds` from the caches; returns what was written."""
    paths = OutputPaths(Path(data_root))
    unresolved: list[tuple[Any, ...]] = []
    result: dict[str, Any] = {}
    if "npi" in kinds:
        result["npi"] = _export(conn, "npi", NPI_PARQUET, NPI_FLAT, paths.npi_parquet, paths.npi_mapping,
                                NPI_TABLE_DDL, unresolved)
    if "hcpcs" in kinds:
        result["hcpcs"] = _export(conn, "hcpcs", HCPCS_PARQUET, HCPCS_FLAT, paths.hcpcs_parquet, paths.hcpcs_mapping,
                                  HCPCS_TABLE_DDL, unresolved)
    write_unresolved(paths.unresolved, unresolved)
    result["unresolved"] = {"path": str(paths.unresolved), "rows": len(unresolved)}
    return result


def write_unresolved(path: Path, rows: list[tuple[Any, ...]]) -> None:
    tmp = _tmp(path)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(UNRESOLVED)
    writer.writerows(_csv_row(r) for r in sorted(rows, key=lambda r: (r[0], r[1])))
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.replace(path)
