"""Hop Teaming at size, in one run on the same generated year:

1. load: `load_year` (zip member streamed into a typed table, header check, line numbers) vs a plain
   `COPY` of the same CSV, already extracted, into the same typed columns (goal: ≥ 80 % of its throughput);
2. enrichment: `build_npis` + `check_and_enrich` (check digits, NPPES facts through the maps' reader, NUCC,
   the nine checks with audit and counts, reverse edges, referral score, per-NPI summary) vs DuckDB
   joining the same edges with the same NPPES / NUCC columns and writing the result (goal: ≤ 1.5× its time);
3. the whole DAG (`claimsflow_hop_teaming` with dag.test(): reference, load, npis, checks, publish with the
   parquet export);
4. the export of the published year's hop.edges_enriched alone: with phase 2's NPI facts, the work DuckDB
   does in phase 2 (read NPPES, join, write parquet), printed as a second ratio.
Each phase runs in a child process so its peak RSS is its own (goal: ≤ 2 GB throughout).

Needs DuckDB for phase 2 only (a benchmark-only dependency: `pip install -r benchmarks/requirements.txt`).
Writes into the dev database's `hop` / `hop_build` schemas. The Medicaid spending totals are left out
(no spending parquet is generated here, to keep generation short); NPPES and NUCC are in.

    python benchmarks/bench_hop_teaming.py [--edges 20000000] [--nppes-rows 3000000] [--keep DIR [--reuse]]
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


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    return {"seconds": seconds, "rows": rows}


def phase_dag(work: Path) -> dict:
    from claimsflow_airflow.local_run import load_dag, run_dag, task_states

    dag = load_dag("claimsflow_hop_teaming")
    t0 = time.perf_counter()
    run = run_dag(dag, run_conf={"year": YEAR, "input_folder": str(work / "hop"), "nppes_dir": str(work / "nppes"),
                                 "nucc_csv": str(next((work / "nucc").glob("*.csv"))),
                                 "spending_parquet": str(work / "no-spending.parquet"),
                                 "output_folder": str(work / "out")})
    if run.state != "success":
        raise SystemExit(f"DAG run {run.state}: {task_states(run)}")
    return {"seconds": time.perf_counter() - t0}


def phase_export(work: Path) -> dict:
    """The published year's hop.edges_enriched (edges joined to both ends' NPPES / NUCC facts) written to
    parquet: with the NPI facts of phase 2, the same work as DuckDB's join (reading NPPES, joining, writing)."""
    import psycopg

    from include.hop_teaming import export

    with psycopg.connect(db_conninfo()) as conn:
        t0 = time.perf_counter()
        path = export.edges_parquet(conn, YEAR, work / "out_export")
        return {"seconds": time.perf_counter() - t0, "bytes": path.stat().st_size}


PHASES = {"load": phase_load, "copy": phase_copy, "enrich": phase_enrich, "duckdb": phase_duckdb, "dag": phase_dag,
          "export": phase_export}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=20_000_000)
    parser.add_argument("--nppes-rows", type=int, default=3_000_000)
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: use the data generated there by an earlier run (same sizes)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = PHASES[args.phase](Path(args.work))
        result["peak_rss_mib"] = rss_mib()
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
        r = {name: run_phase(name, work) for name in ("copy", "load", "enrich", "duckdb", "dag", "export")}
        rows = [
            ("load: zip -> table, checks", f"{r['load']['seconds']:.1f}", f"{r['load']['rows'] / r['load']['seconds']:,.0f}/s",
             f"{r['load']['peak_rss_mib']:.0f}"),
            ("plain COPY of the CSV", f"{r['copy']['seconds']:.1f}", f"{r['copy']['rows'] / r['copy']['seconds']:,.0f}/s",
             f"{r['copy']['peak_rss_mib']:.0f}"),
            ("enrichment (npis + checks + score)", f"{r['enrich']['seconds']:.1f}",
             f"npis {r['enrich']['npis_seconds']:.1f}s, checks {r['enrich']['checks_seconds']:.1f}s",
             f"{r['enrich']['peak_rss_mib']:.0f}"),
            ("DuckDB join of the same columns", f"{r['duckdb']['seconds']:.1f}", f"{r['duckdb']['rows']:,} rows",
             f"{r['duckdb']['peak_rss_mib']:.0f}"),
            ("whole DAG (dag.test)", f"{r['dag']['seconds']:.1f}", "", f"{r['dag']['peak_rss_mib']:.0f}"),
            ("export of hop.edges_enriched", f"{r['export']['seconds']:.1f}", f"{r['export'].get('bytes', 0) / 1e9:.2f} GB parquet",
             f"{r['export']['peak_rss_mib']:.0f}"),
        ]
        print(table(rows, ("phase", "seconds", "rate / detail", "peak RSS MiB")))
        load_ratio = r["copy"]["seconds"] / r["load"]["seconds"]
        enrich_ratio = r["enrich"]["seconds"] / r["duckdb"]["seconds"]
        peak = max(r[k]["peak_rss_mib"] for k in ("load", "enrich", "dag", "export"))  # ours; the baselines are not held to it
        print(f"load throughput vs plain COPY: {load_ratio:.2f} (goal >= 0.80: {'met' if load_ratio >= 0.8 else 'NOT met'})")
        print(f"enrichment time vs DuckDB: {enrich_ratio:.2f}x (goal <= 1.5: {'met' if enrich_ratio <= 1.5 else 'NOT met'}); "
              "ours also checks, dedupes, pairs reverse edges, scores, summarises and builds keys")
        join_ratio = (r["enrich"]["npis_seconds"] + r["export"]["seconds"]) / r["duckdb"]["seconds"]
        print(f"the join alone (NPI facts from NPPES + NUCC, then hop.edges_enriched written to parquet) vs DuckDB: "
              f"{join_ratio:.2f}x")
        print(f"peak RSS of claimsflow's phases: {peak:.0f} MiB (goal <= 2048: {'met' if peak <= 2048 else 'NOT met'}); "
              f"DuckDB's own: {r['duckdb']['peak_rss_mib']:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
