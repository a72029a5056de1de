"""`make demo`: the main job end to end on the built-in sandbox data.

1. Generates the demo sandbox (synthetic sources in the real formats) under
   `<data root>/sandbox/demo-seed<N>/`, once: a complete generation leaves a manifest.json, and a
   folder with one is reused.
2. Starts the sandbox server on 127.0.0.1 and points every external connection at it, so the DAGs
   download from and call "the internet" exactly as they would for real.
3. Runs the bundle's DAGs in order, in-process with dag.test() (no scheduler needed), and stops at
   the first DAG that does not succeed, naming the failed tasks.
4. Prints where the results are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "scripts")]

# (dag_id, run conf): the order in which a user would run them.
DEMO_RUNS: list[tuple[str, dict]] = [
    ("claimsflow_healthcheck", {"rows": 100_000}),
    # Hop Teaming is licensed: users place the zips in a folder, here the sandbox's.
    ("claimsflow_download", {"sources": ["medicaid", "nppes", "cpt", "nucc", "hop_teaming"],
                             "hop_teaming_location": "{sandbox}/restricted/hop_teaming"}),
    # The sandbox is on this machine: 20 requests/s instead of the real APIs' conservative 2.
    ("claimsflow_maps", {"requests_per_second": 20.0}),
    # Every Hop Teaming year the download placed, enriched with NPPES, NUCC and the spending totals.
    ("claimsflow_hop_teaming", {}),
    # Restricted files are placed by users; here the sandbox's. One run per year, as a backfill would.
    ("claimsflow_medicare_ingest", {"year": 2010, "input_folder": "{sandbox}/restricted/medicare"}),
    ("claimsflow_medicare_ingest", {"year": 2011, "input_folder": "{sandbox}/restricted/medicare"}),
    ("claimsflow_medicare_ingest", {"year": 2015, "input_folder": "{sandbox}/restricted/medicare"}),
    # The crosswalks come with the restricted files (the sandbox generates ones consistent with its counties).
    ("claimsflow_medicare_processing", {"crosswalk_folder": "{sandbox}/restricted/medicare_crosswalks"}),
]


def prepare_sandbox(data_root: Path, scale: str, seed: int) -> Path:
    from include.sandbox.generate import generate

    folder = data_root / "sandbox" / f"{scale}-seed{seed}"
    if (folder / "manifest.json").exists() and _generator_matches(folder):
        print(f"[demo] reusing the sandbox in {folder}", flush=True)
        return folder
    started = time.monotonic()
    print(f"[demo] generating the {scale} sandbox in {folder} ...", flush=True)
    manifest = generate(folder, scale, seed=seed)
    size = sum(f["bytes"] for f in manifest.files.values())
    print(f"[demo] sandbox: {len(manifest.files)} files, {size / 2**20:,.1f} MiB in {time.monotonic() - started:.1f}s",
          flush=True)
    return folder


def _generator_matches(folder: Path) -> bool:
    """A sandbox is reused only if the current generator wrote it (same parts, same version)."""
    from include.sandbox.core import Manifest
    from include.sandbox.generate import SANDBOX_VERSION

    return Manifest.read(folder).counts.get("sandbox.version") == SANDBOX_VERSION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "full"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import localenv

    from claimsflow_airflow.local_run import load_dag, run_dag, task_states
    from include.common.paths import data_root
    from include.sandbox.server import SandboxServer

    root = data_root(os.environ.get("CLAIMSFLOW_DATA_DIR"))
    sandbox = prepare_sandbox(root, args.scale, args.seed)
    with SandboxServer(sandbox) as server:
        os.environ.update(localenv.endpoint_connections(base_url=server.url))
        print(f"[demo] sandbox server on {server.url}; every external connection points there", flush=True)
        for dag_id, conf in DEMO_RUNS:
            started = time.monotonic()
            print(f"[demo] running {dag_id} {conf}", flush=True)
            conf = {k: v.format(sandbox=sandbox) if isinstance(v, str) else v for k, v in conf.items()}
            dag_run = run_dag(load_dag(dag_id), run_conf=conf)
            states = task_states(dag_run)
            if dag_run.state != "success":
                failed = {t: s for t, s in states.items() if s != "success"}
                print(f"[demo] {dag_id} ended {dag_run.state}: {failed}", file=sys.stderr)
                return 1
            done = sum(1 for s in states.values() if s == "success")
            skipped = sum(1 for s in states.values() if s == "skipped")
            print(f"[demo] {dag_id}: {done} tasks succeeded, {skipped} skipped (nothing to do) in "
                  f"{time.monotonic() - started:.1f}s", flush=True)
        served = len(server.requests())

    db = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    print()
    print("[demo] results")
    print(f"  data root:   {root}  (raw/, work/, out/; the sandbox sources in sandbox/)")
    print(f"  sandbox:     {sandbox} ({served} requests served during the demo)")
    print(f"  database:    postgresql://{db['login']}@{db['host']}:{db['port']}/{db['schema']}")
    print("               schemas: claimsflow_meta (load_manifest, healthcheck, download_manifest, rate_limits),")
    print("                        maps (npi, hcpcs, npi_cache, hcpcs_cache),")
    print("                        hop (edges_enriched, audit, npi_summary, data_quality; by year),")
    print("                        medicare_raw (one table per ResDAC file, ingest_rejects),")
    print("                        medicare (ps, _ps, beneficiaries, enrollments, ip, admissions),")
    print("                        medicare_audit (enrollments, admissions), medicare_qc (qc_enrollments, qc_admissions)")
    print(f"  downloads:   {root / 'raw'}  (medicaid/, nppes/monthly|weekly/, cpt/cpt_hcpcs_fallback.csv, nucc/,")
    print("               hop_teaming/)")
    print(f"  maps:        {root / 'output'}/npi.parquet, hcpcs.parquet; {root / 'mappings'}/npi|hcpcs/*.csv;")
    print(f"               {root / 'unresolved_identifiers.csv'}")
    print(f"  hop:         {root / 'output' / 'hop_teaming'}/edges_enriched_<year>.parquet")
    reports = sorted((root / "output" / "qc").glob("medicare_qc_*.html"), key=lambda p: p.stat().st_mtime)
    if reports:
        print(f"  QC report:   {reports[-1].resolve().as_uri()}")
    print("  psql:        make psql")
    print("  Airflow UI:  make airflow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
