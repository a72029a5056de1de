"""Hop Teaming at size, in one run on the same generated year:

1. load: `load_year` (zip member streamed into a typed table, header check, line numbers) vs a plain
   `COPY` of the same CSV, already extracted, into the same typed columns (goal: ≥ 80 % of its throughput);
2. enrichment: `build_npis` (check digits, NPPES facts through the maps' reader, NUCC) + `check_and_enrich`
   (the checks with audit and counts, duplicates, reverse edges, referral score, per-NPI summary, keys);
3. the whole DAG (`claimsflow_hop_teaming` with dag.test(): reference, load, npis, check_and_enrich,
   publish with the parquet export), with each task's time;
4. the export of the published year's hop.edges_enriched alone (the join of every clean edge to both
   ends' facts, written to parquet);
5. DuckDB reading the same NPPES / NUCC columns, joining them to the same edges and writing parquet;
6. PostgreSQL's own floor: the published edges joined to both ends' facts by one plain query and
   streamed out (COPY, discarded), and the edges alone streamed out: the engine's cost without ours.
The enrichment ratio (goal: ≤ 1.5× DuckDB's time) compares like with like: NPI facts + the join written
to parquet (2's npis + 4) against 5. Everything after the load (+ checks) is printed as a second ratio.
`--skip enrich,export` takes 2's and 4's figures from the DAG's tasks instead of running them again
(the same code on the same data; a third less time at full size).
Each phase runs in a child process so its peak RSS is its own, plus its largest child's (the NPPES
reader process) as an upper bound (goal: ≤ 2 GB throughout).

Needs DuckDB for 5 only (a benchmark-only dependency: `pip install -r benchmarks/requirements.txt`).
Writes into the dev database's `hop` / `hop_build` schemas. The Medicaid spending totals are left out
(no spending parquet is generated here, to keep generation short); NPPES and NUCC are in.

    python benchmarks/bench_hop_teaming.py [--edges 20000000] [--nppes-rows 3000000] [--keep DIR [--reuse]]
                                           [--skip enrich,export,pg_floor]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "plugins")]

from _machine import db_conninfo, machine_line, plain_copy_seconds, table  # noqa: E402

YEAR = 2022


def rss_mib() -> tuple[float, float]:
    """Peak RSS of this phase process and of its largest child (the NPPES reader runs in one)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def phase_load(work: Path) -> dict:
    import psycopg

    from include.hop_teaming import enrich
    from include.hop_teaming.load import find_year_zip, load_year

    with psycopg.connect(db_conninfo()) as conn:
        enrich.ensure_schema(conn)
        t0 = time.perf_counter()
        r = load_year(conn, find_year_zip(work / "hop", YEAR), YEAR, schema=enrich.BUILD, table=enrich.names(YEAR)["raw"])
        return {"seconds": time.perf_counter() - t0, "rows": r.rows, "csv_bytes": r.csv_bytes}


def phase_copy(work: Path) -> dict:
    import psycopg

    with psycopg.connect(db_conninfo()) as conn:
        seconds, rows = plain_copy_seconds(
            conn, "public.bench_hop_copy", "from_npi bigint, to_npi bigint, patient_count bigint, transaction_count "
            "bigint, average_day_wait double precision, std_day_wait double precision", work / "edges.csv", header=True,
            block=1 << 20)
    return {"seconds": seconds, "rows": rows}


def phase_enrich(work: Path) -> dict:
    import psycopg

    from include.hop_teaming import enrich, referral

    with psycopg.connect(db_conninfo()) as conn:
        t0 = time.perf_counter()
        enrich.load_nucc(conn, next((work / "nucc").glob("*.csv")))
        enrich.load_spending(conn, None)
        rules = referral.load_rules()
        npis = enrich.build_npis(conn, YEAR, work / "nppes", referral.role_sql(rules, alias="t"))
        t1 = time.perf_counter()
        score = referral.score_sql(rules, alias="e", role_index_columns=("from_role_index", "to_role_index"))
        dq = enrich.check_and_enrich(conn, YEAR, "DocGraph_Hop_Teaming_2022.csv", score,
                                     float(rules.likely_referral_at_least))
        return {"seconds": time.perf_counter() - t0, "npis_seconds": t1 - t0, "checks_seconds": time.perf_counter() - t1,
                "npis": npis["npis"], "clean": dq.get("CLEAN EDGES", 0)}


def phase_duckdb(work: Path) -> dict:
    import duckdb

    from include.maps.nppes_bulk import find_bulk_files

    monthly = find_bulk_files(work / "nppes").monthly.main
    nucc = next((work / "nucc").glob("*.csv"))
    out = work / "duckdb_enriched.parquet"
    con = duckdb.connect()
    codes = ", ".join(f'"Healthcare Provider Taxonomy Code_{i}"' for i in range(1, 16))
    switches = ", ".join(f'"Healthcare Provider Primary Taxonomy Switch_{i}"' for i in range(1, 16))
    primary = "coalesce(" + ", ".join(
        f"CASE WHEN \"Healthcare Provider Primary Taxonomy Switch_{i}\" = 'Y' THEN \"Healthcare Provider Taxonomy Code_{i}\" END"
        for i in range(1, 16)) + ", \"Healthcare Provider Taxonomy Code_1\")"
    t0 = time.perf_counter()
    # The paths are the benchmark's own work folder; DuckDB takes no parameter for a COPY target.
    con.execute(f"""
        CREATE TEMP TABLE facts AS
        SELECT NPI::BIGINT AS npi, "Entity Type Code" AS entity_type,
               coalesce("Provider Organization Name (Legal Business Name)",
                        "Provider Last Name (Legal Name)" || ', ' || "Provider First Name") AS name,
               "Provider Business Practice Location Address State Name" AS state,
               left("Provider Business Practice Location Address Postal Code", 5) AS zip,
               {primary} AS taxonomy
          FROM (SELECT NPI, "Entity Type Code", "Provider Organization Name (Legal Business Name)",
                       "Provider Last Name (Legal Name)", "Provider First Name",
                       "Provider Business Practice Location Address State Name",
                       "Provider Business Practice Location Address Postal Code", {codes}, {switches}
                  FROM read_csv('{monthly}', header = true, all_varchar = true))""")  # noqa: S608
    con.execute("CREATE TEMP TABLE nucc AS SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(nucc)])
    facts_seconds = time.perf_counter() - t0
    con.execute(f"""
        COPY (
          SELECT e.*, f.entity_type AS from_entity_type, f.name AS from_name, f.state AS from_state,
                 f.zip AS from_zip, f.taxonomy AS from_taxonomy, fn.Grouping AS from_grouping,
                 fn.Classification AS from_classification, fn.Specialization AS from_specialization,
                 t.entity_type AS to_entity_type, t.name AS to_name, t.state AS to_state, t.zip AS to_zip,
                 t.taxonomy AS to_taxonomy, tn.Grouping AS to_grouping, tn.Classification AS to_classification,
                 tn.Specialization AS to_specialization
            FROM read_csv('{work / "edges.csv"}', header = true) e
            JOIN facts f ON f.npi = e.from_npi
            JOIN facts t ON t.npi = e.to_npi
            LEFT JOIN nucc fn ON fn.Code = f.taxonomy
            LEFT JOIN nucc tn ON tn.Code = t.taxonomy
        ) TO '{out}' (FORMAT parquet)""")  # noqa: S608
    seconds = time.perf_counter() - t0
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()[0]
    out.unlink()  # its disk is the DAG's to use next
    return {"seconds": seconds, "rows": rows, "facts_seconds": facts_seconds}


def phase_dag(work: Path) -> dict:
    from claimsflow_airflow.local_run import load_dag, run_dag, task_states

    dag = load_dag("claimsflow_hop_teaming")
    t0 = time.perf_counter()
    run = run_dag(dag, run_conf={"year": YEAR, "input_folder": str(work / "hop"), "nppes_dir": str(work / "nppes"),
                                 "nucc_csv": str(next((work / "nucc").glob("*.csv"))),
                                 "spending_parquet": str(work / "no-spending.parquet"),
                                 "output_folder": str(work / "out")})
    seconds = time.perf_counter() - t0
    if run.state != "success":
        raise SystemExit(f"DAG run {run.state}: {task_states(run)}")
    tasks: dict[str, float] = {}  # task -> seconds, summed over its mapped instances
    for ti in run.get_task_instances():
        if ti.start_date and ti.end_date:
            tasks[ti.task_id] = tasks.get(ti.task_id, 0.0) + (ti.end_date - ti.start_date).total_seconds()
    return {"seconds": seconds, "tasks": tasks}


def phase_export(work: Path) -> dict:
    """The published year's hop.edges_enriched (edges joined to both ends' NPPES / NUCC facts) written to
    parquet: with the NPI facts of phase 2, the same work as DuckDB's join (reading NPPES, joining, writing)."""
    import psycopg

    from include.hop_teaming import export

    with psycopg.connect(db_conninfo()) as conn:
        t0 = time.perf_counter()
        path = export.edges_parquet(conn, YEAR, work / "out_export")
        return {"seconds": time.perf_counter() - t0, "bytes": path.stat().st_size}


def phase_pg_floor(work: Path) -> dict:
    """PostgreSQL's own floor for the enrichment, on the year the DAG published: every clean edge joined to
    both ends' facts (the columns DuckDB joins) by one plain query streamed out with COPY and discarded,
    and the edges alone streamed out the same way. No NPPES reading, no checks, no parquet: what the
    engine costs, apart from claimsflow's code."""
    import psycopg
    from psycopg import sql

    facts = ("entity_type", "name", "state", "zip", "taxonomy", "grouping", "classification", "specialization")
    side = sql.SQL(", ").join(sql.SQL("{} AS {}").format(sql.Identifier(a, c), sql.Identifier(f"{p}_{c}"))
                              for a, p in (("f", "from"), ("t", "to")) for c in facts)
    edges = sql.SQL(", ").join(sql.Identifier("e", c) for c in ("from_npi", "to_npi", "patient_count", "transaction_count",
                                                                 "average_day_wait", "std_day_wait"))
    queries = {
        "join": sql.SQL("SELECT {}, {} FROM hop.edges e JOIN hop.npis f ON f.year = e.year AND f.npi = e.from_npi "
                        "JOIN hop.npis t ON t.year = e.year AND t.npi = e.to_npi WHERE e.year = {}").format(
                            edges, side, sql.Literal(YEAR)),
        "edges": sql.SQL("SELECT {} FROM hop.edges e WHERE e.year = {}").format(edges, sql.Literal(YEAR)),
    }
    out: dict[str, float] = {}
    with psycopg.connect(db_conninfo()) as conn:
        conn.execute("SET work_mem = '256MB'")
        # A whole year joined: hash joins (the planner may pick memoized index lookups, ~10x slower here).
        conn.execute("SET enable_nestloop = off")
        for name, query in queries.items():
            t0 = time.perf_counter()
            rows = 0
            with conn.cursor() as cur, cur.copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
                for data in copy:
                    rows += bytes(data).count(b"\n")
            out[f"{name}_seconds"] = time.perf_counter() - t0
            out[f"{name}_rows"] = rows
        conn.rollback()
    return {"seconds": out["join_seconds"], **out}


PHASES = {"load": phase_load, "copy": phase_copy, "enrich": phase_enrich, "duckdb": phase_duckdb, "dag": phase_dag,
          "export": phase_export, "pg_floor": phase_pg_floor}


def prepare(work: Path, edges: int, nppes_rows: int) -> float:
    from include.download.archives import extract_zip
    from include.hop_teaming.load import find_member
    from include.sandbox.core import SCALES
    from include.sandbox.generate import generate

    started = time.perf_counter()
    scale = SCALES["full"].with_overrides({"hop_edges": str(edges), "hop_years": str(YEAR),
                                           "nppes_rows": str(nppes_rows), "spending_npis": str(min(nppes_rows // 2, 1_800_000))})
    sandbox = work / "sandbox"
    generate(sandbox, scale, seed=1, only=["nppes", "nucc", "hop_teaming"])
    for z in sorted((sandbox / "site" / "nppes").glob("NPPES_Data_Dissemination_*.zip")):
        kind = "weekly" if "Weekly" in z.name else "monthly"
        extract_zip(z, work / "nppes" / kind / z.stem)
    (work / "nucc").mkdir(exist_ok=True)
    for f in (sandbox / "site" / "images" / "stories" / "CSV").glob("nucc_taxonomy_*.csv"):
        shutil.copy(f, work / "nucc" / f.name)
        break
    (work / "hop").mkdir(exist_ok=True)
    hop_zip = next((sandbox / "restricted" / "hop_teaming").glob(f"*{YEAR}*.zip"))
    shutil.copy(hop_zip, work / "hop" / hop_zip.name)
    with zipfile.ZipFile(hop_zip) as zf, zf.open(find_member(zf, YEAR, str(hop_zip))) as src, \
            (work / "edges.csv").open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return time.perf_counter() - started


def run_phase(name: str, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--work", str(work)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"phase {name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        return {"failed": True, "seconds": float("nan"), "rows": 0, "peak_rss_mib": float("nan"),
                "npis_seconds": float("nan"), "checks_seconds": float("nan")}
    return json.loads(out.stdout.strip().splitlines()[-1])


OPTIONAL_PHASES = {"enrich", "export", "pg_floor"}


def rss_cell(phase: dict) -> str:
    child = phase.get("child_rss_mib", 0.0)
    return f"{phase['peak_rss_mib']:.0f}" + (f" ({phase['own_rss_mib']:.0f} + child {child:.0f})" if child >= 1 else "")


def report(r: dict, edges: int) -> None:
    dag_tasks = r["dag"].get("tasks", {})
    # A skipped standalone phase takes its figures from the DAG task that does the same work.
    npis_s = r["enrich"]["npis_seconds"] if "enrich" in r else dag_tasks.get("npis", float("nan"))
    checks_s = r["enrich"]["checks_seconds"] if "enrich" in r else dag_tasks.get("check_and_enrich", float("nan"))
    export_s = r["export"]["seconds"] if "export" in r else dag_tasks.get("publish", float("nan"))
    source = {"enrich": "own phase" if "enrich" in r else "the DAG's tasks", "export": "own phase" if "export" in r
              else "the DAG's publish task (swap + export)"}

    def own_rss(phase: str) -> str:  # a skipped phase's memory is in the DAG's
        return rss_cell(r[phase]) if phase in r else "(DAG)"

    duck = r["duckdb"]
    rows = [
        ("load: zip -> table, checks", f"{r['load']['seconds']:.1f}", f"{r['load']['rows'] / r['load']['seconds']:,.0f}/s",
         rss_cell(r['load'])),
        ("plain COPY of the CSV", f"{r['copy']['seconds']:.1f}", f"{r['copy']['rows'] / r['copy']['seconds']:,.0f}/s",
         rss_cell(r['copy'])),
        ("NPI facts (npis: NPPES, NUCC, spending)", f"{npis_s:.1f}", source["enrich"],
         own_rss("enrich")),
        ("checks, reverse edges, score, summary, keys", f"{checks_s:.1f}", source["enrich"],
         own_rss("enrich")),
        ("hop.edges_enriched -> parquet (the join)", f"{export_s:.1f}", source["export"],
         own_rss("export")),
        ("DuckDB: NPPES/NUCC facts, join, parquet", f"{duck['seconds']:.1f}",
         f"facts {duck.get('facts_seconds', float('nan')):.1f}s; {duck['rows']:,} rows", rss_cell(duck)),
        ("whole DAG (dag.test)", f"{r['dag']['seconds']:.1f}",
         ", ".join(f"{k} {v:.0f}s" for k, v in dag_tasks.items()), rss_cell(r['dag'])),
    ]
    if "pg_floor" in r:
        floor = r["pg_floor"]
        rows += [
            ("PostgreSQL alone: the join, COPY out", f"{floor['join_seconds']:.1f}", f"{floor['join_rows']:,} rows", ""),
            ("PostgreSQL alone: the edges, COPY out", f"{floor['edges_seconds']:.1f}", f"{floor['edges_rows']:,} rows", ""),
        ]
    print(table(rows, ("phase", "seconds", "rate / detail", "peak RSS MiB")))
    load_ratio = r["copy"]["seconds"] / r["load"]["seconds"]
    print(f"load throughput vs plain COPY: {load_ratio:.2f} (goal >= 0.80: {'met' if load_ratio >= 0.8 else 'NOT met'})")
    join_ratio = (npis_s + export_s) / duck["seconds"]
    print(f"enrichment as DuckDB does it (NPI facts from NPPES + NUCC, both ends joined to every clean edge, written "
          f"to parquet) vs DuckDB: {join_ratio:.2f}x (goal <= 1.5: {'met' if join_ratio <= 1.5 else 'NOT met'})")
    all_ratio = (npis_s + checks_s + export_s) / duck["seconds"]
    print(f"everything after the load (+ the nine checks with audit, duplicates, reverse edges, referral score, "
          f"per-NPI summary, keys) vs DuckDB's join: {all_ratio:.2f}x")
    if "pg_floor" in r:
        duck_join = duck["seconds"] - duck.get("facts_seconds", 0.0)
        print(f"the join alone, PostgreSQL (plain query, COPY out, no parquet) vs DuckDB (join + parquet, its NPPES "
              f"read left out): {r['pg_floor']['join_seconds'] / duck_join:.2f}x; the clean edges alone out of "
              f"PostgreSQL: {r['pg_floor']['edges_seconds'] / duck_join:.2f}x")
    peak = max(r[k]["peak_rss_mib"] for k in ("load", "enrich", "dag", "export") if k in r)  # the baselines are not held to it
    print(f"peak RSS of claimsflow's phases: {peak:.0f} MiB (goal <= 2048: {'met' if peak <= 2048 else 'NOT met'}); "
          f"DuckDB's own: {duck['peak_rss_mib']:.0f} MiB; {edges:,} edges")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=20_000_000)
    parser.add_argument("--nppes-rows", type=int, default=3_000_000)
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: use the data generated there by an earlier run (same sizes)")
    parser.add_argument("--skip", default="", help="comma-separated optional phases not to run: enrich, export "
                        "(their figures then come from the DAG's npis / check_and_enrich / publish tasks, which do "
                        "the same work; saves about a third of the run at full size), pg_floor")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = PHASES[args.phase](Path(args.work))
        own, child = rss_mib()
        # Both peaks added: an upper bound of what the phase held at once.
        result.update(peak_rss_mib=own + child, own_rss_mib=own, child_rss_mib=child)
        print(json.dumps(result))
        return 0
    print(machine_line())
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_hop_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        reuse = args.reuse and (work / "edges.csv").exists() and any((work / "hop").glob("*.zip"))
        gen_s = 0.0 if reuse else prepare(work, args.edges, args.nppes_rows)
        csv_gb = (work / "edges.csv").stat().st_size / 1e9
        zip_gb = next((work / "hop").glob("*.zip")).stat().st_size / 1e9
        print(f"year {YEAR}: {args.edges:,} edges, {csv_gb:.2f} GB CSV ({zip_gb:.2f} GB zipped), NPPES {args.nppes_rows:,} rows; "
              + ("reused from an earlier run" if reuse else f"generated in {gen_s:.0f}s"))
        skip = {p for p in args.skip.split(",") if p}
        if skip - OPTIONAL_PHASES:
            parser.error(f"--skip takes {', '.join(sorted(OPTIONAL_PHASES))}")
        r = {name: run_phase(name, work) for name in ("copy", "load", "enrich", "duckdb", "dag", "export", "pg_floor")
             if name not in skip}
        report(r, args.edges)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
