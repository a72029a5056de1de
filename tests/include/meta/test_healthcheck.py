from __future__ import annotations

import json
import os

import psycopg
import pytest

from include.common.errors import ConfigurationError, DatabaseError
from include.meta.healthcheck import check_data_root, run_healthcheck
from include.meta.manifest import RunInfo


def test_healthcheck_records_its_result(pg, tmp_path):
    result = run_healthcheck(pg, tmp_path, RunInfo(run_id="unit-test"), rows=2_000)
    assert result["copy_rows"] == 2_000
    assert abs(result["hll_estimate"] - 2_000) <= 100
    stored = pg.execute(
        "SELECT copy_rows, data_root FROM claimsflow_meta.healthcheck WHERE run_id = 'unit-test' "
        "ORDER BY checked_at DESC LIMIT 1"
    ).fetchone()
    assert stored == (2_000, str(tmp_path))
    assert list((tmp_path / "work").iterdir()) == []  # the probe file is cleaned up


def test_a_database_without_hll_is_reported():
    # The Airflow test metadata database is a real database without the hll extension.
    conn = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    conninfo = f"host={conn['host']} port={conn['port']} dbname=airflow_test user={conn['login']} password={conn['password']}"
    with psycopg.connect(conninfo) as other:
        if other.execute("SELECT 1 FROM pg_extension WHERE extname = 'hll'").fetchone():
            pytest.skip("hll is installed in the metadata database of this deployment")
        with pytest.raises(DatabaseError, match="hll extension is not installed"):
            run_healthcheck(other, os.environ["CLAIMSFLOW_DATA_DIR"], RunInfo())
        other.rollback()
        assert other.execute("SELECT to_regnamespace('claimsflow_meta')").fetchone()[0] is None


def test_an_unwritable_data_root_is_reported(tmp_path):
    (tmp_path / "work").write_text("a file where the work folder should be")
    with pytest.raises(ConfigurationError, match="not writable"):
        check_data_root(tmp_path)
