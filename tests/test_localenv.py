"""The local environment definition (scripts/localenv.py) the Makefile and tests share."""

from __future__ import annotations

import json
from pathlib import Path

import localenv
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_test_profile_uses_the_test_databases_and_home():
    env = localenv.environment("test", base_env={})
    db = json.loads(env["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    assert db["conn_type"] == "postgres" and db["schema"] == "claimsflow_test"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("/airflow_test")
    assert env["AIRFLOW_HOME"].endswith(".local/airflow-test")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")


def test_every_endpoint_has_a_connection_with_its_real_host():
    defs = json.loads((ROOT / "config" / "connections.json").read_text())
    env = localenv.environment("dev", base_env={})
    for conn_id, spec in defs.items():
        conn = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert conn["host"] == spec["host"] and conn["schema"] in ("http", "https")
    assert json.loads(env["AIRFLOW_CONN_NPI_REGISTRY"])["host"] == "npiregistry.cms.hhs.gov"


def test_sandbox_url_points_every_endpoint_at_the_local_server():
    env = localenv.environment("dev", base_env={}, sandbox_url="http://127.0.0.1:8790")
    for key, value in env.items():
        if key.startswith("AIRFLOW_CONN_") and key != "AIRFLOW_CONN_CLAIMSFLOW_DB":
            conn = json.loads(value)
            assert (conn["host"], conn["port"], conn["schema"]) == ("127.0.0.1", 8790, "http"), key


def test_a_users_own_connection_and_data_root_win_in_dev():
    mine = json.dumps({"conn_type": "http", "host": "mirror.example.org", "schema": "https"})
    env = localenv.environment("dev", base_env={"AIRFLOW_CONN_CMS_DOWNLOADS": mine, "CLAIMSFLOW_DATA_DIR": "/big/disk"})
    assert env["AIRFLOW_CONN_CMS_DOWNLOADS"] == mine
    assert env["CLAIMSFLOW_DATA_DIR"] == env["AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR"] == "/big/disk"


def test_postgres_urls_become_airflow_connections():
    conn = json.loads(localenv.postgres_connection_json("postgresql://u%40x:p%2Fw@db.local:6543/claims"))
    assert conn == {"conn_type": "postgres", "host": "db.local", "port": 6543, "login": "u@x", "password": "p/w",
                    "schema": "claims"}
    with pytest.raises(ValueError):
        localenv.sqlalchemy_url("mysql://u:p@h/db")


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError):
        localenv.environment("prod")
