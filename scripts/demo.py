"""`make demo`: run the bundle's DAGs end to end, in order, on the local database and data root.

Each DAG runs in-process with dag.test() (no scheduler needed); the script stops at the first DAG
that does not succeed and says which task failed. At the end it prints where the results are.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

# (dag_id, run conf): the order in which a user would run them.
DEMO_RUNS: list[tuple[str, dict]] = [
    ("claimsflow_healthcheck", {"rows": 100_000}),
]


def main() -> int:
    from claimsflow_airflow.local_run import load_dag, run_dag, task_states

    for dag_id, conf in DEMO_RUNS:
        started = time.monotonic()
        print(f"[demo] running {dag_id} {conf}", flush=True)
        dag_run = run_dag(load_dag(dag_id), run_conf=conf)
        states = task_states(dag_run)
        if dag_run.state != "success":
            failed = {t: s for t, s in states.items() if s != "success"}
            print(f"[demo] {dag_id} ended {dag_run.state}: {failed}", file=sys.stderr)
            return 1
        print(f"[demo] {dag_id}: {len(states)} tasks succeeded in {time.monotonic() - started:.1f}s", flush=True)

    import json

    db = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    print()
    print("[demo] results")
    print(f"  data root:   {os.environ['CLAIMSFLOW_DATA_DIR']}  (raw/, work/, out/)")
    print(f"  database:    postgresql://{db['login']}@{db['host']}:{db['port']}/{db['schema']}")
    print("               schemas: claimsflow_meta (load_manifest, healthcheck)")
    print("  psql:        make psql")
    print("  Airflow UI:  make airflow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
