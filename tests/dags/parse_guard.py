"""Parse every DAG file with all network and database access forbidden; print JSON timings.

Run in a subprocess by test_dagbag.py, so the guard cannot leak into other tests. A DAG file that
opens a socket (database, HTTP, Variable lookups through the API) while being parsed fails here.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path


class ForbiddenAtParseTime(RuntimeError):
    pass


def _forbid(*args, **kwargs):
    raise ForbiddenAtParseTime(f"network/database access while parsing DAGs: {args[:2]!r}")


socket.socket.connect = _forbid
socket.socket.connect_ex = _forbid
socket.create_connection = _forbid
socket.getaddrinfo = _forbid

from airflow.dag_processing.dagbag import DagBag  # noqa: E402

dags_folder = Path(sys.argv[1])
report = {}
for path in sorted(dags_folder.glob("*.py")):
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(path))
    report[path.name] = {
        "seconds": time.perf_counter() - started,
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {k: v[-2000:] for k, v in bag.import_errors.items()},
    }
print(json.dumps(report))
