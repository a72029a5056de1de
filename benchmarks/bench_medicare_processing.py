"""Medicare in-database processing (include/medicare/processing.py) at N and factor × N enrollee-years:
the time ratio (goal ≤ 11 for 10× the data, i.e. linear) and where the time goes, step by step.

Raw data is built inside PostgreSQL, not by the Python sandbox generator (10M enrollees would take
hours there). A tiny sandbox year (2011) is ingested for real, so the raw tables have the exact
columns, types and generated uniform columns of an ingest; the benchmark's `mbsf_ab_summary_<year>`
and `medpar_all_file_<year>` are created LIKE those tables (INCLUDING GENERATED) and filled with
INSERT … SELECT over generate_series, one file per year, then indexed and analysed as an ingest
would (plus a VACUUM, standing in for the autovacuum that follows a real ingest). Per year, N/years
enrollee records (each year's population overlaps the previous year's by half):

- geography from the sandbox crosswalks (restricted/medicare_crosswalks): SSA state + county and a
  ZIP of that county (+ 4 digits, 2 % without), weighted like the sandbox's states; 1 % county
  code 999 (fips3 then comes from the ZIP);
- per beneficiary: dob (10 % disabled, younger), sex, race, death in the last year for 5 %;
- defects: 0.2 % invalid state code 99, 0.2 % exact duplicate records, 0.1 % age 999, 0.5 % a
  second record elsewhere (mostly another state) the same year, dob/sex typos in later years (0.5 % / 0.2 %);
- 0.3 admissions per enrollee-year: random enrollee of the year, stay 1-60 days, 1-12 diagnoses
  (the tiny file's codes and ICD-9-shaped ones), 1 % exact duplicates, 0.5 % dangling
  beneficiaries, 0.3 % elsewhere (mostly another state), 0.3 % without admission date;
- every other column copied from a row of the tiny file (a template per beneficiary/admission).

Raw generation and processing are timed separately. The processing is processing.run_all's steps,
run one by one so the PostgreSQL temp bytes each step wrote (pg_stat_database; an upper bound of
its peak temp usage, the peak itself needs pg_ls_tmpdir, a superuser function) can be read between.

The benchmark owns the medicare_* schemas of the claimsflow_db database (dev profile: `claimsflow`)
while it runs: it drops medicare_raw, medicare, medicare_audit, medicare_qc and the build schemas,
and the medicare_raw load records, at every size and at the end. Rerun `make demo` afterwards.

Usage:
    python benchmarks/bench_medicare_processing.py [--n 1000000] [--factor 10] [--years 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import psycopg  # noqa: E402
from _machine import db_conninfo, machine_line, table  # noqa: E402
from psycopg import sql  # noqa: E402

from include.fts_parsers.fts import find_fts_files, parse_fts  # noqa: E402
from include.medicare import ingest, processing  # noqa: E402
from include.sandbox.generate import generate  # noqa: E402
from include.sandbox.medicare import STATE_WEIGHTS  # noqa: E402

BENCH = "medicare_bench"  # templates, geography and helpers; dropped at the end
OWNED = ("medicare_raw", "medicare", "medicare_audit", "medicare_qc",
         *(s + processing.BUILD_SUFFIX for s in processing.SCHEMAS.values()))
TEMPLATE_YEAR = 2011
FIRST_YEAR = 2011
OUTPUTS = ("medicare._ps", "medicare_audit.enrollments", "medicare.beneficiaries", "medicare.enrollments",
           "medicare.admissions", "medicare_audit.admissions", "medicare_qc.qc_enrollments",
           "medicare_qc.qc_admissions")

# Hash-based uniforms in [0, 1): deterministic per (key, salt), so a beneficiary's values agree across
# years and an exact duplicate copy repeats its original. Salts: 1-99 beneficiary, 100-399
# beneficiary-year, 400+ admission.
HELPERS = f"""
CREATE FUNCTION {BENCH}.u(k bigint, salt bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (hashint8extended(k, salt) & 2147483647)::double precision / 2147483648;
"""


def q(text: str, *args, **kw) -> sql.Composed:
    return sql.SQL(text).format(*args, **kw)


def owned_reset(conn: psycopg.Connection) -> None:
    for schema in OWNED:
        conn.execute(q("DROP SCHEMA IF EXISTS {} CASCADE", sql.Identifier(schema)))
    # the raw tables are gone: their load records would make an ingest skip the same files
    conn.execute("DELETE FROM claimsflow_meta.load_manifest WHERE dataset = 'medicare_raw'")
    conn.commit()


def geography(crosswalk_folder: Path) -> list[tuple[str, str, str]]:
    """(ssa2, ssa3, zip5) of every ZIP's main county, repeated by the sandbox's state weights."""
    cw = processing.find_crosswalks(crosswalk_folder)
    ssa = {(f2, f3): (s2, s3) for s2, s3, f2, f3, _ in processing.ssa_fips_rows(cw.ssa_fips)}
    best: dict[int, tuple[float, str, str]] = {}
    for zip5, f2, f3, ratio in processing.zip_county_rows(cw.zip_county):
        if ratio > best.get(zip5, (-1.0,))[0]:
            best[zip5] = (ratio, f2, f3)
    rows = []
    for zip5, (_, f2, f3) in sorted(best.items()):
        s2, s3 = ssa[(f2, f3)]
        rows += [(s2, s3, f"{zip5:05d}")] * STATE_WEIGHTS.get(s2, 1)
    return rows


def templates(conn: psycopg.Connection, tmp: Path) -> dict[str, int]:
    """Ingest the tiny sandbox's 2011 files, keep them as templates in BENCH, load the geography."""
    generate(tmp, "tiny", seed=1, only=["medicare"])
    conn.execute(q("DROP SCHEMA IF EXISTS {b} CASCADE; CREATE SCHEMA {b}", b=sql.Identifier(BENCH)))
    conn.execute(HELPERS)
    conn.commit()
    owned_reset(conn)
    ingest.ensure_schema(conn)
    folder = tmp / "restricted" / "medicare" / str(TEMPLATE_YEAR)
    logging.disable(logging.WARNING)  # the sandbox's deliberate FTS quirks, warned about at length
    try:
        for f in find_fts_files(folder):
            if f.base.startswith(("mbsf_ab_summary", "medpar_all_file")):
                ingest.load_fwf(conn, f, parse_fts(f.fts), force=True)
    finally:
        logging.disable(logging.NOTSET)
    sizes = {}
    for kind in ("mbsf_ab_summary", "medpar_all_file"):
        raw, tpl = f"{kind}_{TEMPLATE_YEAR}", f"{kind}_tpl"
        conn.execute(q("CREATE TABLE {t} AS SELECT row_number() OVER (ORDER BY source_file, record_number) AS tk, r.* "
                       "FROM {r} r", t=sql.Identifier(BENCH, tpl), r=sql.Identifier("medicare_raw", raw)))
        # the raw table itself is what LIKE copies (generated columns included)
        conn.execute(q("ALTER TABLE {r} SET SCHEMA {b}", r=sql.Identifier("medicare_raw", raw), b=sql.Identifier(BENCH)))
        sizes[kind] = conn.execute(q("SELECT count(*) FROM {}", sql.Identifier(BENCH, tpl))).fetchone()[0]
    conn.execute(f"CREATE TABLE {BENCH}.geo (gk integer PRIMARY KEY, ssa2 text, ssa3 text, zip text)")
    geo = geography(tmp / "restricted" / "medicare_crosswalks")
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {BENCH}.geo VALUES (%s, %s, %s, %s)",  # noqa: S608
                        [(i + 1, *g) for i, g in enumerate(geo)])
    sizes["geo"] = len(geo)
    dgns = [c for (c,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND column_name ~ '^dgnscd[0-9]+$' ORDER BY ordinal_position", (BENCH, "medpar_all_file_tpl")).fetchall()]
    codes = sql.SQL(", ").join(sql.Identifier(c) for c in dgns)
    conn.execute(q("CREATE TABLE {d} AS SELECT array_agg(DISTINCT c ORDER BY c) AS codes, count(DISTINCT c)::int AS n "
                   "FROM {t}, unnest(ARRAY[{codes}]::text[]) c WHERE c <> ''",
                   d=sql.Identifier(BENCH, "dx"), t=sql.Identifier(BENCH, "medpar_all_file_tpl"), codes=codes))
    for t in ("mbsf_ab_summary_tpl", "medpar_all_file_tpl", "geo", "dx"):
        conn.execute(q("ANALYZE {}", sql.Identifier(BENCH, t)))
    conn.commit()
    return sizes


def columns(conn: psycopg.Connection, name: str) -> list[str]:
    """The template's own (not generated) columns, in order."""
    return [c for (c,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND is_generated = 'NEVER' ORDER BY ordinal_position", (BENCH, name)).fetchall()]


def insert_sql(conn: psycopg.Connection, kind: str, target: str, overrides: dict[str, str], source: str) -> sql.Composed:
    """INSERT INTO medicare_raw.<target> (own columns) SELECT overrides or the template row's value."""
    cols = columns(conn, f"{kind}_{TEMPLATE_YEAR}")
    unknown = set(overrides) - set(cols) - {f"dgnscd{n}" for n in range(1, 26)} - {f"dgns_vrsn_cd_{n}" for n in range(1, 26)}
    if unknown:
        raise RuntimeError(f"{kind}: the template has no column(s) {sorted(unknown)}: the layout changed")
    exprs = [sql.SQL(overrides[c]) if c in overrides else sql.Identifier("t", c) for c in cols]
    return q("INSERT INTO {t} ({cols})\nSELECT {exprs}\n{source}", t=sql.Identifier("medicare_raw", target),
             cols=sql.SQL(", ").join(map(sql.Identifier, cols)), exprs=sql.SQL(",\n       ").join(exprs),
             source=sql.SQL(source))


def dob(u: str) -> str:
    """A beneficiary's date of birth: 65+ in the benchmark's years, 10 % younger (disabled)."""
    return (f"(CASE WHEN {u}(b, 10) < 0.1 THEN date '1946-01-01' + floor({u}(b, 11) * 7300)::int "
            f"ELSE date '1910-01-01' + floor({u}(b, 11) * 13100)::int END)")


def summary_insert(conn: psycopg.Connection, year: int, k: int, m: int, years: int) -> sql.Composed:
    half = max(m // 2, 1)
    n_geo = conn.execute(f"SELECT count(*) FROM {BENCH}.geo").fetchone()[0]  # noqa: S608
    n_tpl = conn.execute(f"SELECT count(*) FROM {BENCH}.mbsf_ab_summary_tpl").fetchone()[0]  # noqa: S608
    u = f"{BENCH}.u"
    source = f"""
  FROM (
    SELECT s.*, {u}(b, 10) < 0.1 AS disabled,
           {dob(u)} + CASE WHEN {k} > 0 AND {u}(b, 330) < 0.005 THEN 1 ELSE 0 END AS dob  -- typo in a later year
      FROM (
        SELECT b, copy, row_number() OVER () AS rn
          FROM generate_series(1, {m}) j
         CROSS JOIN LATERAL (SELECT {k}::bigint * {half} + j AS b) bb
         CROSS JOIN LATERAL (VALUES (0), (1), (2)) c(copy)
         WHERE copy = 0
            OR (copy = 1 AND {u}(b, 300 + {k}) < 0.005)   -- mover: a second record in another state
            OR (copy = 2 AND {u}(b, 310 + {k}) < 0.002)   -- exact duplicate
      ) s
  ) s
  JOIN {BENCH}.geo g ON g.gk = 1 + floor(CASE WHEN copy = 1 THEN {u}(b, 320 + {k}) ELSE {u}(b, 1) END * {n_geo})::int
  JOIN {BENCH}.mbsf_ab_summary_tpl t ON t.tk = 1 + b % {n_tpl}"""  # noqa: S608
    race = (f"CASE WHEN {u}(b, 9) < 0.78 THEN '1' WHEN {u}(b, 9) < 0.88 THEN '2' WHEN {u}(b, 9) < 0.91 THEN '3' "
            f"WHEN {u}(b, 9) < 0.94 THEN '4' WHEN {u}(b, 9) < 0.98 THEN '5' WHEN {u}(b, 9) < 0.99 THEN '6' ELSE '0' END")
    overrides = {
        "source_file": f"'mbsf_ab_summary_bench_{year}.dat'",
        "record_number": "rn",
        "bene_id": "substr(md5(b::text), 1, 15)",
        "rfrnc_yr": str(year),
        "state_cd": f"CASE WHEN {u}(b, 100 + {k}) < 0.002 THEN '99' ELSE g.ssa2 END",
        "cnty_cd": f"CASE WHEN {u}(b, 3) < 0.01 THEN '999' ELSE g.ssa3 END",
        "bene_zip": f"g.zip || CASE WHEN {u}(b, 4) < 0.02 THEN '' ELSE lpad(floor({u}(b, 5) * 10000)::int::text, 4, '0') END",
        "age": f"CASE WHEN {u}(b, 110 + {k}) < 0.001 THEN 999 ELSE {year} - extract(year FROM dob)::int END",
        "bene_dob": "dob",
        "death_dt": f"CASE WHEN {u}(b, 6) < 0.05 AND {k} = least({years - 1}, (b - 1) / {half}) "
                    f"THEN date '{year}-01-01' + floor({u}(b, 7) * 365)::int END",
        "ndi_death_dt": "NULL",
        "sex": f"CASE WHEN ({u}(b, 8) < 0.55) <> ({k} > 0 AND {u}(b, 340) < 0.002) THEN '2' ELSE '1' END",
        "race": race,
        "rti_race_cd": race,
        "orec": "CASE WHEN disabled THEN '1' ELSE '0' END",
        "crec": "CASE WHEN disabled THEN '1' ELSE '0' END",
        "ms_cd": "CASE WHEN disabled THEN '20' ELSE '10' END",
    }
    return insert_sql(conn, "mbsf_ab_summary", f"mbsf_ab_summary_{year}", overrides, source)


def medpar_insert(conn: psycopg.Connection, year: int, k: int, m: int) -> sql.Composed:
    half = max(m // 2, 1)
    n_adm = round(0.3 * m)
    n_geo = conn.execute(f"SELECT count(*) FROM {BENCH}.geo").fetchone()[0]  # noqa: S608
    n_tpl = conn.execute(f"SELECT count(*) FROM {BENCH}.medpar_all_file_tpl").fetchone()[0]  # noqa: S608
    u = f"{BENCH}.u"
    source = f"""
  FROM (
    SELECT s.*, date '{year}-01-01' + floor({u}(a, 403) * 365)::int AS adm,
           least(60, 1 + floor(-ln(1 - {u}(a, 404)) * 5))::int AS los,
           1 + floor({u}(a, 405) * 12)::int AS nd,
           {dob(u)} AS dob
      FROM (
        SELECT a, copy, row_number() OVER () AS rn,
               {k}::bigint * {half} + 1 + floor({u}(a, 401) * {m})::bigint AS b
          FROM generate_series(1, {n_adm}) j
         CROSS JOIN LATERAL (SELECT {k}::bigint * 1000000000 + j AS a) aa
         CROSS JOIN LATERAL (VALUES (0), (1)) c(copy)
         WHERE copy = 0 OR {u}(a, 410) < 0.01   -- exact duplicate
      ) s
  ) s
  CROSS JOIN {BENCH}.dx
  JOIN {BENCH}.geo g ON g.gk = 1 + floor(CASE WHEN {u}(a, 420) < 0.003 THEN {u}(a, 421) ELSE {u}(b, 1) END * {n_geo})::int
  JOIN {BENCH}.medpar_all_file_tpl t ON t.tk = 1 + a % {n_tpl}"""  # noqa: S608
    bene = f"substr(md5(CASE WHEN {u}(a, 400) < 0.005 THEN 'dangling' || a ELSE b::text END), 1, 15)"
    overrides = {
        "source_file": f"'medpar_all_file_bench_{year}.dat'",
        "record_number": "rn",
        "bene_id": bene,
        "medparid": "upper(substr(md5('m' || a), 1, 15))",
        "medpar_yr_num": f"'{year}'",
        "age_cnt": f"{year} - extract(year FROM dob)::int",
        "sex": f"CASE WHEN {u}(b, 8) < 0.55 THEN '2' ELSE '1' END",
        "state_cd": "g.ssa2",
        "cnty_cd": "g.ssa3",
        "bene_zip": "g.zip",
        "admsndt": f"CASE WHEN {u}(a, 402) >= 0.003 THEN adm END",
        "admsnday": "extract(isodow FROM adm)::int % 7 + 1",
        "dschrgdt": "adm + los",
        "loscnt": "los",
    }
    dgns = [c for c in columns(conn, f"medpar_all_file_{TEMPLATE_YEAR}") if c.startswith("dgnscd")]
    for n, c in enumerate(dgns, 1):
        code = (f"CASE WHEN {u}(a, {500 + n}) < 0.6 THEN dx.codes[1 + floor({u}(a, {530 + n}) * dx.n)::int] "
                f"ELSE lpad(floor(power({u}(a, {560 + n}), 3) * 1000)::int::text, 3, '0') "
                f"|| floor({u}(a, {590 + n}) * 10)::int END")
        overrides[c] = f"CASE WHEN {n} <= nd THEN {code} END"
        overrides[f"dgns_vrsn_cd_{n}"] = f"CASE WHEN {n} <= nd THEN '9' END"
    overrides["ad_dgns"] = overrides[dgns[0]]
    return insert_sql(conn, "medpar_all_file", f"medpar_all_file_{year}", overrides, source)


def build_raw(conn: psycopg.Connection, n: int, years: int) -> dict[str, float | int]:
    """Fresh medicare_raw with the benchmark's tables; seconds and rows per kind."""
    owned_reset(conn)
    ingest.ensure_schema(conn)
    m = n // years
    out: dict[str, float | int] = {}
    for k in range(years):
        year = FIRST_YEAR + k
        for kind in ("mbsf_ab_summary", "medpar_all_file"):
            name = f"{kind}_{year}"
            t0 = time.perf_counter()
            conn.execute(q("CREATE TABLE {t} (LIKE {tpl} INCLUDING GENERATED)", t=sql.Identifier("medicare_raw", name),
                           tpl=sql.Identifier(BENCH, f"{kind}_{TEMPLATE_YEAR}")))
            stmt = summary_insert(conn, year, k, m, years) if kind == "mbsf_ab_summary" else medpar_insert(conn, year, k, m)
            rows = conn.execute(stmt).rowcount
            conn.execute(q("ALTER TABLE {t} ADD PRIMARY KEY (source_file, record_number)",
                           t=sql.Identifier("medicare_raw", name)))
            conn.execute(q("CREATE INDEX ON {t} (bene_id)", t=sql.Identifier("medicare_raw", name)))
            conn.commit()
            conn.autocommit = True
            try:
                conn.execute(q("VACUUM (ANALYZE) {t}", t=sql.Identifier("medicare_raw", name)))
            finally:
                conn.autocommit = False
            out[f"{kind} s"] = out.get(f"{kind} s", 0.0) + time.perf_counter() - t0
            out[f"{kind} rows"] = out.get(f"{kind} rows", 0) + rows
    out["MiB"] = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) / 2^20 FROM pg_class c "
                              "JOIN pg_namespace s ON s.oid = c.relnamespace "
                              "WHERE s.nspname = 'medicare_raw' AND c.relkind = 'r'").fetchone()[0]
    conn.commit()
    return out


def check_generated_columns(conn: psycopg.Connection, year: int) -> None:
    """LIKE … INCLUDING GENERATED must bring the uniform columns along, with values."""
    for kind in ("mbsf_ab_summary", "medpar_all_file"):
        gen = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'medicare_raw' "
                           "AND table_name = %s AND is_generated = 'ALWAYS'", (f"{kind}_{year}",)).fetchone()[0]
        bad = conn.execute(q("SELECT count(*) FILTER (WHERE year IS DISTINCT FROM {y}) FROM {t}", y=sql.Literal(year),
                             t=sql.Identifier("medicare_raw", f"{kind}_{year}"))).fetchone()[0]
        if gen < 3 or bad:
            raise RuntimeError(f"{kind}_{year}: {gen} generated columns, {bad} rows with another year")
    conn.commit()


def temp_bytes(conn: psycopg.Connection) -> int:
    # a backend flushes its statistics at most once a second, when idle: wait, idle, then read
    time.sleep(1.1)
    conn.execute("SELECT 1")
    conn.commit()
    value = conn.execute("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]
    conn.commit()
    return value


def process(conn: psycopg.Connection, crosswalks: Path) -> dict[str, dict[str, float]]:
    """processing.run_all's steps one by one: seconds and temp bytes per step."""
    out = {}
    before = temp_bytes(conn)
    for step in processing.STEPS:
        seconds = processing.run_step(conn, step, crosswalk_folder=crosswalks)["seconds"]
        after = temp_bytes(conn)
        out[step] = {"s": seconds, "temp": after - before}
        before = after
        print(f"  {step}: {seconds:.1f}s", flush=True)
    return out


def counts(conn: psycopg.Connection) -> dict[str, int]:
    out = {t: conn.execute(q("SELECT count(*) FROM {}", sql.Identifier(*t.split(".")))).fetchone()[0] for t in OUTPUTS}
    for t in ("medicare_audit.enrollments", "medicare_audit.admissions"):
        for reason, c in conn.execute(q("SELECT reason, count(*) FROM {} GROUP BY 1 ORDER BY 1",
                                        sql.Identifier(*t.split(".")))).fetchall():
            out[f"  {t.split('.')[1]} {reason}"] = c
    conn.commit()
    return out


def ratio(a: float, b: float) -> str:
    return f"{b / a:.1f}" if a > 0 else "-"


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="enrollee-years at the first size")
    parser.add_argument("--factor", type=int, default=10, help="the second size is factor × n")
    parser.add_argument("--years", type=int, default=2, help="years the enrollee-years spread over")
    args = parser.parse_args()
    print(machine_line())
    # the machine may be shared: the load average says how much of it the figures had
    print("load average (1/5/15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    sizes = (args.n, args.n * args.factor)
    with tempfile.TemporaryDirectory(prefix="bench_medicare_processing_") as tmp, \
            psycopg.connect(db_conninfo()) as conn:
        settings = conn.execute("SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) "
                                "FROM pg_settings WHERE name IN ('work_mem', 'maintenance_work_mem', 'shared_buffers', "
                                "'max_parallel_workers_per_gather', 'max_wal_size')").fetchone()[0]
        print(f"PostgreSQL {conn.info.server_version // 10000}: {settings}")
        conn.commit()
        crosswalks = Path(tmp) / "restricted" / "medicare_crosswalks"
        try:
            tpl = templates(conn, Path(tmp))
            print(f"templates (tiny sandbox {TEMPLATE_YEAR} ingested): {tpl}")
            raw, steps, rows = [], [], []
            for n in sizes:
                print(f"N = {n:,}: building raw tables …", flush=True)
                raw.append(build_raw(conn, n, args.years))
                check_generated_columns(conn, FIRST_YEAR + args.years - 1)
                r = raw[-1]
                print("  raw: " + ", ".join(f"{k} {r[k + ' rows']:,} rows in {r[k + ' s']:.1f}s"
                                            for k in ("mbsf_ab_summary", "medpar_all_file"))
                      + f", {r['MiB']:,.0f} MiB", flush=True)
                steps.append(process(conn, crosswalks))
                rows.append(counts(conn))
        finally:
            conn.rollback()
            conn.execute(q("DROP SCHEMA IF EXISTS {} CASCADE", sql.Identifier(BENCH)))
            conn.commit()
            owned_reset(conn)  # the 10N tables would make every later processing run slow

    a, b = sizes
    na, nb = f"N={a:,}", f"{args.factor}N={b:,}"
    print()
    print(f"enrollee-years over {args.years} years; raw generation (INSERT … SELECT, indexes, VACUUM ANALYZE):")
    print(table([(kind, f"{raw[0][kind + ' rows']:,}", f"{raw[0][kind + ' s']:.1f}", f"{raw[1][kind + ' rows']:,}",
                  f"{raw[1][kind + ' s']:.1f}") for kind in ("mbsf_ab_summary", "medpar_all_file")]
                + [("raw MiB", "", f"{raw[0]['MiB']:,.0f}", "", f"{raw[1]['MiB']:,.0f}")],
                ("raw tables", f"rows {na}", "s", f"rows {nb}", "s")))
    print()
    total = [sum(s["s"] for s in st.values()) for st in steps]
    print(table([(step, f"{steps[0][step]['s']:.1f}", f"{steps[1][step]['s']:.1f}",
                  ratio(steps[0][step]["s"], steps[1][step]["s"]), f"{100 * steps[1][step]['s'] / total[1]:.0f} %",
                  mib(steps[0][step]["temp"]), mib(steps[1][step]["temp"])) for step in processing.STEPS]
                + [("total", f"{total[0]:.1f}", f"{total[1]:.1f}", ratio(*total), "100 %",
                    mib(sum(s["temp"] for s in steps[0].values())), mib(sum(s["temp"] for s in steps[1].values())))],
                ("step", f"s {na}", f"s {nb}", "ratio", f"share {nb}", "temp MiB N", f"temp MiB {args.factor}N")))
    goal = 1.1 * args.factor
    print(f"processing time ratio {total[1] / total[0]:.2f} for {args.factor}x the data (goal <= {goal:g}: "
          f"{'met' if total[1] / total[0] <= goal else 'NOT met'}); "
          f"peak temp bounded by the largest step's temp written: {mib(max(s['temp'] for s in steps[1].values()))} MiB")
    print("load average (1/5/15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print()
    print(table([(t, f"{rows[0].get(t, 0):,}", f"{rows[1].get(t, 0):,}", ratio(rows[0].get(t, 0), rows[1].get(t, 0)))
                 for t in dict.fromkeys([*rows[0], *rows[1]])], ("output rows", na, nb, "ratio")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
