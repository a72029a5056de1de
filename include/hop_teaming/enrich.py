"""Hop Teaming after the load: the year's NPIs (check digit, NPPES facts through the maps' NPPES reader,
NUCC taxonomy, Medicaid spending totals), the checks (audit + data-quality counts), the enriched edges
with the referral likelihood, the per-NPI summary, and the swap into the published `hop` tables.

Everything of a year is built in schema `hop_build` (tables `<kind>_<year>`) and published by
`publish_year` in one transaction: the year's partitions of `hop.edges` (compact scored edges),
`hop.npis` (the year's NPI facts), `hop.audit` and `hop.npi_summary` are replaced, with its
`hop.data_quality` and `hop.loads` rows, so a rerun replaces a year exactly. `hop.edges_enriched` is
the view joining edges to both ends' facts.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from include.db.postgres import copy_rows, copy_text, run_sql_file, sql_template, validate_identifier
from include.hop_teaming.load import HopTeamingError
from include.maps import nppes_bulk, spending

log = logging.getLogger("claimsflow.hop_teaming")

BUILD = "hop_build"
# build table -> published parent (partitioned by year); hop.edges_enriched is a view over edges + npis
PUBLISHED = {"scored": "edges", "npis": "npis", "audit": "audit", "summary": "npi_summary"}
CRUFT_NPI = 9_999_999_999


def names(year: int) -> dict[str, str]:
    y = int(year)
    return {"schema": BUILD, "raw": f"raw_{y}", "rejects": f"raw_{y}_rejects", "lines": f"raw_{y}_lines",
            "npi_list": f"npi_list_{y}",
            "facts": f"facts_{y}", "npis": f"npis_{y}", "audit": f"audit_{y}",
            "dq": f"dq_{y}", "flagged": f"flagged_{y}", "scored": f"scored_{y}",
            "scored_year": f"scored_{y}_year", "summary": f"summary_{y}"}


def ensure_schema(conn: psycopg.Connection) -> None:
    run_sql_file(conn, "hop_teaming/create_schema.sql")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BUILD)))
    conn.commit()


# ------------------------------------------------------------------------------------ reference data

def load_nucc(conn: psycopg.Connection, nucc_csv: Path) -> int:
    """hop.nucc_taxonomy from the NUCC CSV (any of its header variants), replaced."""
    rows = nppes_bulk.read_nucc_taxonomy(nucc_csv)
    conn.execute("DELETE FROM hop.nucc_taxonomy")
    n = copy_rows(conn, ("hop", "nucc_taxonomy"), nppes_bulk.NUCC_FIELDS,
                  ([r[f] for f in nppes_bulk.NUCC_FIELDS] for r in {r["code"]: r for r in rows}.values()))
    conn.commit()
    return n


def load_spending(conn: psycopg.Connection, parquet: Path | None) -> int:
    """hop.npi_spending (per NPI and role: claims, beneficiaries, paid) from the spending parquet;
    emptied when there is none (the enrichment then leaves those columns NULL)."""
    conn.execute("DELETE FROM hop.npi_spending")
    if parquet is None or not Path(parquet).exists():
        conn.commit()
        log.warning("no Medicaid spending parquet (%s): spending totals stay empty", parquet)
        return 0
    conn.execute("CREATE TEMPORARY TABLE spending_parts (npi text, role text, claims double precision, "
                 "beneficiaries double precision, paid double precision) ON COMMIT DROP")
    for part in spending.provider_totals(parquet):
        copy_rows(conn, "spending_parts", part.column_names,
                  zip(*(part.column(c).to_pylist() for c in part.column_names), strict=True))
    n = conn.execute("""INSERT INTO hop.npi_spending
                        SELECT npi, role, sum(claims), sum(beneficiaries), sum(paid)
                          FROM spending_parts GROUP BY npi, role""").rowcount
    conn.commit()
    return n


# ------------------------------------------------------------------------------------------ the NPIs

# Session memory for the year's big statements: a year has ~200M edges and ~2M NPIs; with the server's
# defaults (work_mem 4MB) every hash join and aggregate spills in many batches. Per statement and
# node, so the server's peak is a small multiple of these; lower them for a small server.
WORK_MEM = "256MB"
MAINTENANCE_WORK_MEM = "1GB"


def _session_memory(conn: psycopg.Connection, work_mem: str, maintenance_work_mem: str) -> None:
    for name, value in (("work_mem", work_mem), ("maintenance_work_mem", maintenance_work_mem)):
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def luhn_valid(npis: np.ndarray) -> np.ndarray:
    """NPI check digits, vectorised: Luhn over "80840" + the first nine digits (the prefix adds 24)."""
    npis = np.asarray(npis, dtype=np.int64)
    digits = [(npis // 10 ** (9 - k)) % 10 for k in range(10)]
    total = np.full(npis.shape, 24, dtype=np.int64)
    for k in range(9):
        d = digits[k]
        if k % 2 == 0:  # doubled: positions 1, 3, 5, 7, 9 from the left
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    check = (10 - total % 10) % 10
    return (npis >= 1_000_000_000) & (npis <= 9_999_999_999) & (check == digits[9])


# COPY's binary rows of one NOT NULL bigint: field count (int16), length (int32), value (int64), big-endian.
_BINARY_BIGINT_ROW = np.dtype([("fields", ">i2"), ("length", ">i4"), ("value", ">i8")])
_BINARY_HEADER = 19  # signature (11 bytes), flags (4), header extension length (4, zero)


def _npi_list(conn: psycopg.Connection, n: dict[str, str]) -> np.ndarray:
    """The year's distinct NPIs (either end) as table `npi_list` (check digit assumed valid) and as an
    array, read from one binary COPY straight into numpy (no Python object per NPI: a year has ~9M)."""
    s, lst = sql.Identifier(n["schema"]), sql.Identifier(n["npi_list"])
    conn.execute(sql.SQL("CREATE UNLOGGED TABLE {s}.{lst} AS SELECT DISTINCT npi, true AS luhn_valid "
                         "FROM (SELECT from_npi AS npi FROM {s}.{r} UNION ALL SELECT to_npi FROM {s}.{r}) u "
                         "WHERE npi IS NOT NULL").format(s=s, lst=lst, r=sql.Identifier(n["raw"])))
    data = bytearray()
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {}.{} (npi) TO STDOUT (FORMAT binary)").format(s, lst)) as copy:
        for block in copy:
            data += block
    body = memoryview(data)[_BINARY_HEADER:len(data) - 2]  # the trailer: a field count of -1
    rows = np.frombuffer(body, dtype=_BINARY_BIGINT_ROW)
    if len(body) % _BINARY_BIGINT_ROW.itemsize or ((rows["fields"] != 1) | (rows["length"] != 8)).any():
        raise HopTeamingError(f"unexpected binary COPY layout from {n['schema']}.{n['npi_list']}",
                              source=f"{n['schema']}.{n['npi_list']}")
    return rows["value"].astype(np.int64)


def _primary_taxonomy(batch: pa.RecordBatch) -> pa.Array:
    """The slot whose primary switch is Y (the first, when a file marks several), else the first code."""
    n = batch.num_rows
    primary = pa.nulls(n, pa.string())
    first = pa.nulls(n, pa.string())
    names_ = set(batch.schema.names)
    for i in reversed(range(1, nppes_bulk.TAXONOMY_SLOTS + 1)):
        code_col = f"Healthcare Provider Taxonomy Code_{i}"
        if code_col not in names_:
            continue
        code = batch.column(code_col)
        nonempty = pc.not_equal(code, "")
        switch_col = f"Healthcare Provider Primary Taxonomy Switch_{i}"
        if switch_col in names_:
            primary = pc.if_else(pc.and_(nonempty, pc.equal(batch.column(switch_col), "Y")), code, primary)
        first = pc.if_else(nonempty, code, first)
    return pc.coalesce(primary, first)


FACT_FIELDS = ("npi", "entity_type", "name", "credential", "state", "zip", "taxonomy", "enumeration_date",
               "deactivation_date", "reactivation_date")


def _date(values: pa.Array) -> pa.Array:
    """NPPES dates (MM/DD/YYYY) as dates, parsed here column-wise rather than per row in SQL; an empty or
    malformed one is NULL."""
    return pc.cast(pc.strptime(values, format="%m/%d/%Y", unit="s", error_is_null=True), pa.date32())


def _facts_csv(batch: pa.RecordBatch) -> bytes:
    """One block of NPPES facts as CSV for COPY, built column-wise (no Python per row)."""
    n = batch.num_rows
    cols = set(batch.schema.names)

    def col(name: str) -> pa.Array:
        return batch.column(name) if name in cols else pa.array([""] * n, pa.string())

    fc = nppes_bulk.FACT_COLUMNS
    person = pc.binary_join_element_wise(col(fc[3]), col(fc[4]), ", ")
    person = pc.utf8_trim(person, characters=", ")  # a missing first or last name leaves no dangling comma
    name = pc.if_else(pc.equal(col("Entity Type Code"), "2"), col(fc[2]), person)
    table = pa.table({
        "npi": col("NPI"), "entity_type": col("Entity Type Code"), "name": name, "credential": col(fc[5]),
        "state": col(fc[6]), "zip": pc.utf8_slice_codeunits(col(fc[7]), 0, 5),
        "taxonomy": pc.fill_null(_primary_taxonomy(batch), ""),
        "enumeration_date": _date(col("Provider Enumeration Date")),
        "deactivation_date": _date(col("NPI Deactivation Date")),
        "reactivation_date": _date(col("NPI Reactivation Date")),
    })
    buf = pa.BufferOutputStream()
    pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False))
    return buf.getvalue().to_pybytes()


def build_npis(conn: psycopg.Connection, year: int, nppes_root: Path | None, role: sql.Composable) -> dict[str, Any]:
    """The year's NPI table: check digits, NPPES facts (newest bundle wins), NUCC and spending joined,
    and each NPI's role for the referral rules (`role`: referral.role_sql over the NUCC alias `t`)."""
    started = time.monotonic()
    n = names(year)
    s = sql.Identifier(n["schema"])
    _session_memory(conn, WORK_MEM, MAINTENANCE_WORK_MEM)
    conn.execute(sql.SQL("ANALYZE {}.{}").format(s, sql.Identifier(n["raw"])))  # a sample: plans for the joins
    for key in ("npi_list", "facts", "npis"):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(s, sql.Identifier(n[key])))
    npis = _npi_list(conn, n)
    valid = luhn_valid(npis)
    if (~valid).any():  # few: the table starts with every NPI valid
        conn.execute(sql.SQL("UPDATE {}.{} SET luhn_valid = false WHERE npi = ANY(%s)").format(
            s, sql.Identifier(n["npi_list"])), (npis[~valid].tolist(),))
    conn.execute(sql.SQL("CREATE UNLOGGED TABLE {}.{} (npi bigint, entity_type text, name text, credential text, "
                         "state text, zip text, taxonomy text, enumeration_date date, deactivation_date date, "
                         "reactivation_date date)").format(s, sql.Identifier(n["facts"])))
    facts = 0
    if nppes_root is not None and Path(nppes_root).exists():
        files = nppes_bulk.find_bulk_files(nppes_root)
        wanted = pc.cast(pa.array(npis[valid]), pa.string())
        blocks = (_facts_csv(batch) for batch in nppes_bulk.provider_facts(files, wanted))
        facts = copy_text(conn, (n["schema"], n["facts"]), FACT_FIELDS, blocks)
    else:
        log.warning("no NPPES files under %s: every NPI will count as not in NPPES", nppes_root)
    conn.execute(sql.SQL("ANALYZE {}.{}").format(s, sql.Identifier(n["facts"])))  # hash joins, not sorts, in npis.sql
    conn.execute(sql_template("hop_teaming/npis.sql", {"year": int(year)}, fragments={"role": role},
                              **_idents(n, "schema", "npis", "npi_list", "facts")))
    conn.commit()
    out = {"npis": int(len(npis)), "luhn_invalid": int((~valid).sum()), "in_nppes": facts,
           "seconds": round(time.monotonic() - started, 2)}
    log.info("%d: %s", year, out)
    return out


def _idents(n: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: n[k] for k in keys}


def check_and_enrich(conn: psycopg.Connection, year: int, source_file: str, referral: sql.Composable,
                     likely: float, *, work_mem: str = WORK_MEM,
                     maintenance_work_mem: str = MAINTENANCE_WORK_MEM) -> dict[str, int]:
    """Checks, reverse edges and referral scores in one pass, with the year's keys (checks.sql), then the
    audit and data-quality counts (audit.sql) and the per-NPI summary (summary.sql), all in hop_build."""
    n = names(year)
    s = sql.Identifier(n["schema"])
    for key in ("flagged", "scored", "audit", "dq", "summary"):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(s, sql.Identifier(n[key])))
    _session_memory(conn, work_mem, maintenance_work_mem)
    lits = {"year": int(year), "source_file": source_file}
    timings: dict[str, float] = {}
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute(sql_template("hop_teaming/checks.sql", lits, fragments={"referral": referral},
                                 **_idents(n, "schema", "raw", "npis", "scored", "flagged", "scored_year")))
        checked_rows = cur.rowcount  # of the file's first statement, the CREATE TABLE AS of every row
        while cur.nextset():
            pass
    timings["checks"] = time.monotonic() - started
    conn.execute(sql_template("hop_teaming/audit.sql", {**lits, "checked_rows": int(checked_rows)},
                              **_idents(n, "schema", "flagged", "rejects", "audit", "dq")))
    mark = time.monotonic()
    conn.execute(sql_template("hop_teaming/summary.sql", {**lits, "likely": float(likely)},
                              **_idents(n, "schema", "scored", "npis", "summary")))
    timings["summary"] = time.monotonic() - mark
    conn.commit()
    log.info("%d: checked %d rows in %s", year, checked_rows, {k: round(v, 1) for k, v in timings.items()})
    dq = dict(conn.execute(sql.SQL("SELECT check_name, rows FROM {}.{}").format(s, sql.Identifier(n["dq"]))).fetchall())
    conn.rollback()
    return dq


def _columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute("""SELECT a.attname, format_type(a.atttypid, a.atttypmod)
                             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                             JOIN pg_namespace s ON s.oid = c.relnamespace
                            WHERE s.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
                        (schema, table)).fetchall()
    return dict(rows)


def _align_columns(conn: psycopg.Connection, parent: str, built: str) -> None:
    """A newer version may build more columns than the published table has (years published before
    get NULL there); anything else (a column gone or of another type) is refused with what to do."""
    have, new = _columns(conn, "hop", parent), _columns(conn, BUILD, built)
    changed = [f"{c} ({have[c]} -> {new[c]})" for c in have.keys() & new.keys() if have[c] != new[c]]
    gone = sorted(have.keys() - new.keys())
    if changed or gone:
        raise HopTeamingError(
            f"hop.{parent} was published by another version ({', '.join(changed + [f'{c} no longer built' for c in gone])}); "
            f"drop it (DROP TABLE hop.{parent} CASCADE) and rerun every year", source=f"hop.{parent}")
    for column in (c for c in new if c not in have):
        log.warning("hop.%s: adding column %s %s (NULL for the years published before)", parent, column, new[column])
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
            sql.Identifier("hop", parent), sql.Identifier(column), sql.SQL(new[column])))


def publish_year(conn: psycopg.Connection, year: int, *, source_file: str, zip_path: str,
                 lock_timeout_s: float = 300) -> None:
    """Replace the year's partitions of the published tables, its data-quality and load rows, in one
    transaction."""
    y = int(year)
    n = names(y)
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
    for key, parent in PUBLISHED.items():
        built = sql.Identifier(BUILD, n[key])
        part = validate_identifier(f"{parent}_{y}")
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {}) PARTITION BY LIST (year)").format(
            sql.Identifier("hop", parent), built))
        _align_columns(conn, parent, n[key])
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("hop", part)))
        conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA hop").format(built))
        if n[key] != part:
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier("hop", n[key]), sql.Identifier(part)))
        conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
            sql.Identifier("hop", parent), sql.Identifier("hop", part), sql.Literal(y)))
    conn.execute("DELETE FROM hop.data_quality WHERE year = %s", (y,))
    conn.execute(sql.SQL("INSERT INTO hop.data_quality SELECT year, check_name, rows FROM {}").format(
        sql.Identifier(BUILD, n["dq"])))
    conn.execute(sql.SQL("""INSERT INTO hop.loads (year, source_file, zip_path, lines, clean_edges)
                            SELECT %s, %s, %s, max(rows) FILTER (WHERE check_name = 'LINES'),
                                   max(rows) FILTER (WHERE check_name = 'CLEAN EDGES') FROM {}
                            ON CONFLICT (year) DO UPDATE SET source_file = EXCLUDED.source_file,
                                zip_path = EXCLUDED.zip_path, lines = EXCLUDED.lines,
                                clean_edges = EXCLUDED.clean_edges, loaded_at = now()""").format(
        sql.Identifier(BUILD, n["dq"])), (y, source_file, zip_path))
    run_sql_file(conn, "hop_teaming/edges_enriched_view.sql")
    for key in ("raw", "rejects", "lines", "npi_list", "facts", "flagged", "dq"):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(BUILD, n[key])))
    conn.commit()
    # Autovacuum never analyses a partitioned table, and the planner estimates joins through the parents
    # (hop.edges_enriched joins hop.edges to hop.npis) from the parents' own statistics: without them a
    # year's join is planned as ~10^12 rows of nested loops. A sample across the partitions, after the
    # swap so that its locks are not held for it.
    for parent in PUBLISHED.values():
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("hop", parent)))
    conn.commit()
