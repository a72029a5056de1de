"""docker-compose.yaml cannot be run here (no Docker), so check what can be checked statically:
the CeleryExecutor layout, the bundle's mounts, secrets taken from .env, and that the images pin the
same Airflow and requirements as the local install."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _pin(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.fullmatch(rf"{re.escape(name)}==(\S+)", line.strip())
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def _mount(volume: str) -> tuple[str, str]:
    """'SOURCE:TARGET[:ro]' -> (target, source); SOURCE may hold ':' in a ${VAR:-default}."""
    volume = re.sub(r":(ro|rw)$", "", volume)
    source, _, target = volume.rpartition(":")
    return target, source


def test_services_are_the_celery_layout(compose):
    services = set(compose["services"])
    assert AIRFLOW_SERVICES | {"postgres", "redis"} <= services
    commands = {name: compose["services"][name].get("command") for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-worker": "celery worker",
        "airflow-triggerer": "triggerer",
    }
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name


def test_bundle_folders_are_mounted(compose):
    for name in AIRFLOW_SERVICES:
        targets = dict(_mount(v) for v in compose["services"][name]["volumes"])
        for folder in ("dags", "plugins", "include", "config"):
            assert targets.get(f"/opt/airflow/{folder}") == f"./{folder}", (name, folder)
            assert (ROOT / folder).is_dir()
        assert "/opt/airflow/data" in targets
        env = compose["services"][name]["environment"]
        assert env["CLAIMSFLOW_DATA_DIR"] == env["AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR"] == "/opt/airflow/data"
        assert "/opt/airflow" in env["PYTHONPATH"].split(":") and "/opt/airflow/plugins" in env["PYTHONPATH"].split(":")


def test_secrets_come_from_the_environment(compose):
    text = (ROOT / "docker-compose.yaml").read_text()
    for var in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_DB_PASSWORD", "CLAIMSFLOW_DB_PASSWORD"):
        assert f"${{{var}:?" in text, f"{var} must be required from .env"
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__FERNET_KEY"] == "${AIRFLOW_FERNET_KEY:?set AIRFLOW_FERNET_KEY in .env}"
    assert env["AIRFLOW_CONN_CLAIMSFLOW_DB"].startswith("postgresql://claimsflow:${CLAIMSFLOW_DB_PASSWORD")
    example = (ROOT / "docker" / "env.example").read_text()
    for var in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_DB_PASSWORD", "CLAIMSFLOW_DB_PASSWORD"):
        assert re.search(rf"^{var}=$", example, re.M), f"env.example must list {var} without a value"


def test_airflow_image_pins_match_requirements(compose):
    airflow = _pin("apache-airflow")
    assert airflow == "3.3.2"
    dockerfile = (ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_VERSION={airflow}" in dockerfile
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}$", dockerfile, re.M)
    assert '"apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt' in dockerfile
    assert "COPY requirements.txt /requirements.txt" in dockerfile
    for name in AIRFLOW_SERVICES:
        build = compose["services"][name]["build"]
        assert build["dockerfile"] == "docker/airflow/Dockerfile" and build["context"] == "."
        assert build["args"]["AIRFLOW_VERSION"] == airflow
        assert compose["services"][name]["image"] == f"${{CLAIMSFLOW_IMAGE:-claimsflow-airflow:{airflow}}}"


def test_postgres_image_has_hll_and_both_databases(compose):
    pg = compose["services"]["postgres"]
    assert pg["build"]["context"] == "docker/postgres"
    dockerfile = (ROOT / "docker" / "postgres" / "Dockerfile").read_text()
    assert re.search(r"^FROM postgres:\$\{POSTGRES_MAJOR\}", dockerfile, re.M)
    assert 'postgresql-${POSTGRES_MAJOR}-hll' in dockerfile
    init = (ROOT / "docker" / "postgres" / "initdb" / "10-claimsflow.sh").read_text()
    assert "CREATE EXTENSION IF NOT EXISTS hll" in init and "CREATE DATABASE" in init
    assert pg["environment"]["POSTGRES_DB"] == "airflow"
    assert "pg_isready" in pg["healthcheck"]["test"]


def test_init_migrates_and_imports_the_bundles_pools_and_connections(compose):
    init = compose["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "airflow pools import /opt/airflow/config/pools.json" in script
    assert "airflow connections import --overwrite /opt/airflow/config/connections.json" in script
    pools = json.loads((ROOT / "config" / "pools.json").read_text())
    assert {"npi_registry_api", "clinical_tables_api", "downloads"} <= set(pools)
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert compose["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
