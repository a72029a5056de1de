"""Test harness: the `test` profile of the local environment, a real PostgreSQL, real DAG runs.

The environment (test databases, AIRFLOW_HOME, connections) is set before anything imports Airflow,
from the same definition the Makefile uses (scripts/localenv.py). Run `make test`, or `make bootstrap`
once and then `.venv/bin/pytest`.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "scripts")]

import localenv  # noqa: E402


def pytest_configure(config):
    try:
        env = localenv.environment("test")
    except localenv.EnvironmentNotReady as exc:
        raise pytest.UsageError(str(exc)) from exc
    os.environ.update(env)
    Path(env["CLAIMSFLOW_DATA_DIR"]).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def db_conninfo() -> str:
    """libpq conninfo of the test database, built from the `claimsflow_db` Airflow connection."""
    import json

    conn = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    return (
        f"host={conn['host']} port={conn['port']} dbname={conn['schema']} "
        f"user={conn['login']} password={conn['password']}"
    )


@pytest.fixture
def pg(db_conninfo):
    """A psycopg 3 connection to the test database, rolled back and closed after the test."""
    import psycopg

    conn = psycopg.connect(db_conninfo)
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture
def scratch_schema(pg):
    """A fresh schema for one test, dropped afterwards."""
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:12]}"
    pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    pg.commit()
    yield name
    pg.rollback()
    pg.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    pg.commit()


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def tiny_sandbox(tmp_path_factory) -> Path:
    """A generated `tiny` sandbox, shared by the session (read-only: copy before changing it)."""
    from include.sandbox.generate import generate

    out = tmp_path_factory.mktemp("sandbox")
    generate(out, "tiny", seed=1)
    return out


@pytest.fixture
def sandbox_copy(tiny_sandbox, tmp_path) -> Path:
    """A private copy of the tiny sandbox a test may change (publish a month, damage a file)."""
    import shutil

    dest = tmp_path / "sandbox"
    shutil.copytree(tiny_sandbox, dest)
    return dest


@pytest.fixture
def sandbox_server(tiny_sandbox):
    from include.sandbox.server import SandboxServer

    with SandboxServer(tiny_sandbox) as server:
        yield server


@pytest.fixture(scope="session")
def backfill_plan():
    """The years `airflow backfill create --dry-run` plans for a DAG over a date range (the CLI's own
    plan, after reserializing the DAGs into the test metadata database)."""
    import re
    import subprocess

    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "dags", "reserialize"], check=True, capture_output=True, env=os.environ, timeout=300)

    def plan(dag_id: str, from_date: str, to_date: str) -> list[str]:
        out = subprocess.run([airflow, "backfill", "create", "--dag-id", dag_id, "--from-date", from_date,
                              "--to-date", to_date, "--dry-run"], check=True, capture_output=True, text=True,
                             env=os.environ, timeout=300).stdout
        return re.findall(r"^\|\s*(\d{4})-01-01 00:00:00\+00:00", out, flags=re.MULTILINE)  # the table's rows

    return plan
