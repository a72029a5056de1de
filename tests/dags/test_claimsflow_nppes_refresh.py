"""claimsflow_nppes_refresh run for real (dag.test, reschedule mode) against the sandbox server and the
test PostgreSQL; the NppesReleaseSensor's poke against the same real parts."""

from __future__ import annotations

import json
import socket
from datetime import date
from pathlib import Path

import localenv
import pytest

from claimsflow_airflow.local_run import run_dag, task_states
from include.common.errors import ConfigurationError
from include.download import manifest as download_manifest
from include.sandbox.nppes import monthly_name, publish_monthly
from include.sandbox.server import SandboxServer

# A sensor that gives up after ~3 s, poking every second: a "nothing new" run takes a few seconds.
FAST = {"poke_timeout": 3, "poke_interval": 1}
DOWNSTREAM = ("plan_bundles", "nppes_bundle", "publish_nppes")


def point_at(server, monkeypatch) -> None:
    for key, value in localenv.endpoint_connections(base_url=server.url).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(data))
    return data


def known_monthly(pg) -> str | None:
    download_manifest.ensure_tables(pg)
    return download_manifest.latest_version(pg, "nppes_monthly")


def month_after(version: str) -> date:
    year, month = (int(p) for p in version.split("-"))
    return date(year + month // 12, month % 12 + 1, 1)


def zip_requests(server) -> list[str]:
    return [r.path for r in server.requests() if r.path.lower().endswith(".zip")]


def test_the_dag_is_wired_as_documented(dagbag):
    dag = dagbag.get_dag("claimsflow_nppes_refresh")
    sensor = dag.get_task("wait_for_release")
    assert type(sensor).__name__ == "NppesReleaseSensor"
    assert (sensor.mode, sensor.soft_fail, sensor.http_conn_id) == ("reschedule", True, "cms_downloads")
    assert dag.get_task("nppes_bundle").partial_kwargs.get("pool") == "downloads"
    assert [a.name for a in dag.get_task("publish_nppes").outlets] == ["raw_nppes"]
    assert dag.catchup is False
    assert {t.task_id for t in dag.get_task("wait_for_release").downstream_list} == {"plan_bundles", "publish_nppes"}


def test_nothing_new_ends_skipped_and_downloads_nothing(dagbag, data_root, sandbox_server, monkeypatch, pg):
    point_at(sandbox_server, monkeypatch)
    fetched = run_dag(dagbag.get_dag("claimsflow_download"), run_conf={"sources": ["nppes"]})
    assert fetched.state == "success", task_states(fetched)
    assert known_monthly(pg) >= "2026-11"

    sandbox_server.clear_requests()
    run = run_dag(dagbag.get_dag("claimsflow_nppes_refresh"), run_conf=FAST)
    states = task_states(run)
    assert run.state == "success", states  # a month without a release is not a failure
    assert states["wait_for_release"] == "skipped"
    assert all(states[t] == "skipped" for t in DOWNSTREAM), states
    pokes = sandbox_server.requests()
    assert len(pokes) >= 2, "reschedule mode: the sensor should have poked more than once"
    assert all(r.path.endswith("/nppes/NPI_Files.html") for r in pokes), [r.path for r in pokes]
    assert not zip_requests(sandbox_server)
    rows = pg.execute("SELECT count(*) FROM claimsflow_meta.download_manifest WHERE run_id = %s",
                      (run.run_id,)).fetchone()[0]
    assert rows == 0


def test_a_new_monthly_is_downloaded_recorded_and_announced(dagbag, data_root, sandbox_copy, monkeypatch, pg):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with SandboxServer(sandbox_copy) as server:
        point_at(server, monkeypatch)
        fetched = run_dag(dagbag.get_dag("claimsflow_download"), run_conf={"sources": ["nppes"]})
        assert fetched.state == "success", task_states(fetched)
        known = known_monthly(pg)
        new_month = month_after(known)  # the next month after whatever the (shared) manifest holds
        new_version = f"{new_month:%Y-%m}"
        publish_monthly(sandbox_copy, new_month.year, new_month.month, new_providers=5)

        server.clear_requests()
        run = run_dag(dagbag.get_dag("claimsflow_nppes_refresh"), run_conf=FAST)
        requested = zip_requests(server)
    try:
        states = task_states(run)
        assert run.state == "success", states
        assert states["wait_for_release"] == "success"
        assert [k for k in states if k.startswith("nppes_bundle")] == ["nppes_bundle[0]"]
        assert requested == [f"/nppes/{monthly_name(new_month)}"]  # exactly the new bundle, once

        assert known_monthly(pg) == new_version
        row = pg.execute(
            "SELECT dataset, version, status, bytes_transferred > 0, details->>'primary_csv' "
            "FROM claimsflow_meta.download_manifest WHERE run_id = %s", (run.run_id,)).fetchall()
        assert len(row) == 1 and row[0][:4] == ("nppes_monthly", new_version, "downloaded", True)
        assert Path(row[0][4]).is_file()
        assert (data_root / "raw" / "nppes" / "monthly" / monthly_name(new_month)).is_file()

        with create_session() as session:
            event = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                     .filter(AssetModel.name == "raw_nppes", AssetEvent.source_run_id == run.run_id).one())
            assert event.extra["version"] == new_version
            assert event.extra["previous_version"] == known
            assert event.extra["monthly"]["version"] == new_version and event.extra["weekly"] == []
    finally:
        # Keep the shared test manifest at the sandbox's month, so the next run starts from the same state.
        pg.execute("DELETE FROM claimsflow_meta.download_manifest WHERE run_id = %s", (run.run_id,))
        pg.commit()


# ---------------------------------------------------------------------------------------------- the sensor's poke


def sensor(**kwargs):
    from claimsflow_airflow.sensors.nppes_release import NppesReleaseSensor

    return NppesReleaseSensor(task_id="wait_for_release", **kwargs)


def test_poke_reports_the_newer_monthly_with_its_bundles(sandbox_copy, monkeypatch, pg):
    future = month_after(known_monthly(pg) or "2026-11")
    publish_monthly(sandbox_copy, future.year, future.month)
    with SandboxServer(sandbox_copy) as server:
        point_at(server, monkeypatch)
        done = sensor().poke({})
    assert done.is_done
    release = done.xcom_value
    assert release["version"] == f"{future:%Y-%m}" and release["kind"] == "monthly"
    assert release["url"].endswith(monthly_name(future)) and release["bundles"][0]["url"] == release["url"]
    assert release["index_url"].endswith("/nppes/NPI_Files.html")
    json.dumps(release)  # XCom-serialisable


def test_an_unreachable_index_page_is_a_false_poke_not_a_failure(monkeypatch, caplog, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_CMS_DOWNLOADS", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http",
         "extra": {"retries": 2, "backoff": 0.01, "connect_timeout": 1}}))
    assert sensor().poke({}) is False
    assert "NPPES index page unreachable" in caplog.text + capsys.readouterr().out  # task logs go to structlog


def test_a_wrong_index_url_fails_the_poke(sandbox_server, monkeypatch):
    point_at(sandbox_server, monkeypatch)
    with pytest.raises(ConfigurationError, match="HTTP 404"):
        sensor(index_url="/nppes/no_such_page.html").poke({})


def test_run_time_overrides_of_timeout_and_interval_are_validated():
    s = sensor(timeout_seconds="oops")
    with pytest.raises(ConfigurationError, match="timeout_seconds"):
        s.execute({})
