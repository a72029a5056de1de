"""Integrity of the DAG folder: every DAG imports, is documented, owned, retried, tagged, and parses
fast without touching the network or a database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARSE_SECONDS_PER_DAG = 2.0


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert dagbag.dags, "the dags/ folder holds no DAG"


def test_dag_ids_follow_the_naming_convention(dagbag):
    for dag_id in dagbag.dag_ids:
        assert dag_id.startswith("claimsflow_"), dag_id


def test_every_dag_is_documented_tagged_owned_and_retried(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag_id}: no doc_md")
        for task in dag.tasks:
            if task.owner in (None, "", "airflow"):
                problems.append(f"{dag_id}.{task.task_id}: owner is {task.owner!r}")
            if (task.retries or 0) < 1:
                problems.append(f"{dag_id}.{task.task_id}: no retries")
    assert not problems, "\n".join(problems)


def test_params_defaults_are_valid(dagbag):
    # An invalid default only fails when a run is created; catch it here instead.
    for dag in dagbag.dags.values():
        dag.params.validate()


def test_every_pool_used_is_declared(dagbag):
    declared = set(json.loads((ROOT / "config" / "pools.json").read_text())) | {"default_pool"}
    used = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            pool = task.partial_kwargs.get("pool", task.pool) if hasattr(task, "partial_kwargs") else task.pool
            used[f"{dag.dag_id}.{task.task_id}"] = pool
    undeclared = {t: p for t, p in used.items() if p not in declared}
    assert not undeclared, f"tasks use pools not in config/pools.json: {undeclared}"


@pytest.fixture(scope="module")
def guarded_parse():
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("parse_guard.py")), str(ROOT / "dags")],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_files_parse_without_network_or_database(guarded_parse):
    errors = {name: r["import_errors"] for name, r in guarded_parse.items() if r["import_errors"]}
    assert not errors, errors
    assert all(r["dag_ids"] for r in guarded_parse.values()), guarded_parse


def test_each_dag_file_parses_quickly(guarded_parse):
    slow = {name: round(r["seconds"], 2) for name, r in guarded_parse.items() if r["seconds"] > PARSE_SECONDS_PER_DAG}
    assert not slow, f"DAG files slower than {PARSE_SECONDS_PER_DAG}s to parse: {slow}"


def test_parse_guard_catches_a_dag_that_connects_at_import(tmp_path):
    # The guard itself must be able to fail: a DAG file that opens a socket at import time.
    (tmp_path / "bad_dag.py").write_text(
        "import socket\n"
        "from airflow.sdk import dag\n"
        "socket.create_connection(('127.0.0.1', 9))\n"
        "@dag(schedule=None)\n"
        "def claimsflow_bad():\n    pass\n"
        "claimsflow_bad()\n"
    )
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("parse_guard.py")), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "ForbiddenAtParseTime" in json.dumps(report["bad_dag.py"]["import_errors"])
