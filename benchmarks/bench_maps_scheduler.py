"""claimsflow_maps under the real scheduler: do concurrent mapped API tasks keep one shared rate limit?

dag.test() runs one task at a time, so it cannot show that the mapped `npi_api` tasks running together
in pool `npi_registry_api` stay within `requests_per_second` together. This benchmark:
  1. generates a `tiny` sandbox with --npis spending NPIs and serves it from two loopback sandbox
     servers, one per API (the server's token bucket is per client, not per API), each limited to
     --rps on /api/ (burst = rps), so any excess is answered 429;
  2. creates fresh databases `airflow_bench` (metadata) and `claimsflow_bench` (claimsflow_db) with the
     claimsflow role, migrates them, imports config/pools.json, runs claimsflow_download with
     dag.test() into a temporary data root;
  3. starts `airflow api-server`, `scheduler` and `dag-processor` (LocalExecutor, parallelism 4) in a
     temporary AIRFLOW_HOME, triggers claimsflow_maps through the REST API with
     {"requests_per_second": rps, "concurrency": 2, "skip_nppes_bulk": true} and waits for it;
  4. prints, from the servers' request logs and the metadata DB: requests per API, the busiest
     1-second window, 429s, achieved rate vs the limit, and the overlap of the mapped task instances.
The NPI requests are attributed to their mapped task by the shard split of maps/pending.sql, so any
1-second window over the limit is shown with who sent what. Every process it starts is stopped
(process groups), and the databases dropped, even on failure. Takes about 5 minutes.

Usage: python benchmarks/bench_maps_scheduler.py [--npis 300] [--rps 2] [--concurrency 2]
       [--hcpcs-batch-size N] [--timeout 900] [--keep] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts")]

import localenv  # noqa: E402
import psycopg  # noqa: E402
from _machine import machine_line, table  # noqa: E402
from psycopg import sql  # noqa: E402

from include.http.pg_limiter import SAFETY_MARGIN  # noqa: E402
from include.sandbox.core import SCALES  # noqa: E402
from include.sandbox.generate import generate  # noqa: E402
from include.sandbox.server import SandboxServer  # noqa: E402

AIRFLOW = str(ROOT / ".venv" / "bin" / "airflow")
META_DB, APP_DB = "airflow_bench", "claimsflow_bench"
DAG_ID = "claimsflow_maps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busiest_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def over_limit(stamps: list[float], limit: float) -> list[int]:
    """Indexes i (into sorted stamps) where the 1 s window ending at stamp i holds more than `limit`."""
    stamps, out, j = sorted(stamps), [], 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        if i - j + 1 > limit:
            out.append(i)
    return out


def npi_shards(state: dict, npis: list[str], shards: int) -> dict[str, int]:
    """Which mapped npi_api task asked for each NPI: the split of maps/pending.sql."""
    with psycopg.connect(db_url(state, APP_DB)) as conn:
        return dict(conn.execute("SELECT n, mod(mod(hashtext(n)::bigint, %(s)s) + %(s)s, %(s)s)::int "
                                 "FROM unnest(%(a)s::text[]) n", {"s": shards, "a": npis}).fetchall())


# ------------------------------------------------------------------------------------ databases
def admin_conninfo(state: dict) -> str:
    return state["claimsflow_db_url_test"]  # any database the claimsflow role (CREATEDB) can reach


def recreate_databases(state: dict) -> None:
    with psycopg.connect(admin_conninfo(state), autocommit=True) as conn:
        for name in (META_DB, APP_DB):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_databases(state: dict) -> None:
    with psycopg.connect(admin_conninfo(state), autocommit=True) as conn:
        for name in (META_DB, APP_DB):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def db_url(state: dict, name: str) -> str:
    base = state["airflow_db_url_test"]
    return base.rsplit("/", 1)[0] + "/" + name


# ------------------------------------------------------------------------------------ environment
def bench_env(state: dict, home: Path, data: Path, port: int, npi_url: str, hcpcs_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(localenv.environment("test", base_env={}, sandbox_url=npi_url))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": localenv.sqlalchemy_url(db_url(state, META_DB)),
        "AIRFLOW_CONN_CLAIMSFLOW_DB": localenv.postgres_connection_json(db_url(state, APP_DB)),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "CLAIMSFLOW_DATA_DIR": str(data),
        "AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR": str(data),
    })
    conn = json.loads(env["AIRFLOW_CONN_CLINICAL_TABLES"])
    conn["port"] = int(hcpcs_url.rsplit(":", 1)[1])
    env["AIRFLOW_CONN_CLINICAL_TABLES"] = json.dumps(conn)
    return env


def run(cmd: list[str], env: dict[str, str], log: Path, what: str) -> None:
    with log.open("w") as out:
        rc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if rc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{what} failed (exit {rc}); {log}:\n{tail}")


DOWNLOAD = """
import sys
from claimsflow_airflow.local_run import load_dag, run_dag, task_states
run = run_dag(load_dag("claimsflow_download"), run_conf={"sources": ["medicaid", "nppes", "cpt", "nucc"]})
print("download:", run.state, task_states(run))
sys.exit(run.state != "success")
"""


# ------------------------------------------------------------------------------------ services
class Services:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> None:
        out = (self.logs / f"{name}.log").open("w")
        # own session = own process group: stop() signals the service and every child it forked
        self.procs[name] = subprocess.Popen([AIRFLOW, name, *args], env=self.env, cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({p.returncode}):\n{self.tail(name)}")

    def tail(self, name: str, n: int = 30) -> str:
        return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs.values():  # the group too: workers may outlive their parent
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if p.poll() is None:
                p.wait(timeout=10)


class Api:
    def __init__(self, base: str, passwords_file: Path) -> None:
        self.base, self.passwords_file, self.token = base, passwords_file, None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def wait_up(self, services: Services, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            services.check_alive()
            try:
                self.call("GET", "/api/v2/version")
                if self.passwords_file.exists():
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise RuntimeError(f"api-server not up within {timeout:.0f}s:\n{services.tail('api-server')}")
        password = json.loads(self.passwords_file.read_text())["admin"]
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]


# ------------------------------------------------------------------------------------ metadata DB
def wait_dag_parsed(meta: psycopg.Connection, services: Services, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        row = meta.execute("SELECT is_stale FROM dag WHERE dag_id = %s", (DAG_ID,)).fetchone()
        meta.rollback()
        if row is not None and not row[0]:
            return
        errors = meta.execute("SELECT filename, stacktrace FROM import_error").fetchall()
        meta.rollback()
        if errors:
            raise RuntimeError(f"DAG import errors: {errors}")
        time.sleep(2)
    raise RuntimeError(f"{DAG_ID} not parsed within {timeout:.0f}s:\n{services.tail('dag-processor')}")


def wait_run(meta: psycopg.Connection, services: Services, run_id: str, timeout: float) -> str:
    deadline, shown = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        services.check_alive()
        state = meta.execute("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s",
                             (DAG_ID, run_id)).fetchone()[0]
        tis = meta.execute("SELECT task_id, map_index, coalesce(state, 'none') FROM task_instance "
                           "WHERE dag_id = %s AND run_id = %s ORDER BY task_id, map_index", (DAG_ID, run_id)).fetchall()
        meta.rollback()
        line = " ".join(f"{t}{'' if m < 0 else f'[{m}]'}={s}" for t, m, s in tis)
        if line != shown:
            print(f"  [{time.strftime('%H:%M:%S')}] run {state}: {line}", flush=True)
            shown = line
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise RuntimeError(f"run {run_id} not finished within {timeout:.0f}s")


def task_rows(meta: psycopg.Connection, run_id: str) -> list[tuple]:
    rows = meta.execute(
        "SELECT task_id, map_index, pool, state, try_number, start_date, end_date FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s ORDER BY start_date NULLS LAST, task_id, map_index",
        (DAG_ID, run_id)).fetchall()
    meta.rollback()
    return rows


def task_log_tail(home: Path, run_id: str, task_id: str, map_index: int, n: int = 25) -> str:
    pattern = f"**/run_id={run_id}/task_id={task_id}/" + (f"map_index={map_index}/" if map_index >= 0 else "") + "*.log"
    logs = sorted((home / "logs").glob(pattern))
    if not logs:
        return "(no log)"
    return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-n:])


# ------------------------------------------------------------------------------------ report
def overlap(tis: list[tuple]) -> tuple[float, float] | None:
    """(start, end) of the time all the given task instances were running together, None if never."""
    start = max(t[5].timestamp() for t in tis)
    end = min(t[6].timestamp() for t in tis)
    return (start, end) if end > start else None


def rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0


def api_row(label: str, log: list, rps: float) -> tuple:
    stamps = [r.ts for r in log]
    span = max(stamps) - min(stamps) if stamps else 0.0
    achieved = rate(stamps)
    return (label, len(log), sum(1 for r in log if r.status == 200), sum(1 for r in log if r.status == 429),
            busiest_second(stamps), f"{rps:g}", f"{achieved:.2f}", f"{achieved / rps:.0%}", f"{span:.1f}")


def hms(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def report(args, state: dict, tis: list[tuple], npi_log: list, hcpcs_log: list, tmp: Path) -> list[tuple]:
    """Prints the figures; returns the goals as (name, met)."""
    print(table([(t, m, p, s, n, hms(a.timestamp()) if a else "-", hms(b.timestamp()) if b else "-",
                  f"{(b - a).total_seconds():.1f}" if a and b else "-") for t, m, p, s, n, a, b in tis],
                ("task", "map", "pool", "state", "try", "start", "end", "seconds")))
    print()
    print(table([api_row("NPI Registry", npi_log, args.rps), api_row("Clinical Tables", hcpcs_log, args.rps)],
                ("API", "requests", "200", "429", "max in 1 s", "limit/s", "achieved/s", "of limit", "span s")))
    print()
    overlaps = {}
    for task_id, pool, log in (("npi_api", "npi_registry_api", npi_log), ("hcpcs_api", "clinical_tables_api", hcpcs_log)):
        mapped = [t for t in tis if t[0] == task_id and t[1] >= 0 and t[5] and t[6]]
        pools = ", ".join(sorted({t[2] for t in mapped}))
        both = overlap(mapped) if len(mapped) >= 2 else None
        overlaps[task_id] = both is not None and pools == pool
        if both is None:
            print(f"{task_id}: {len(mapped)} mapped task instance(s) in pool {pools}, not running together")
            continue
        inside = [r.ts for r in log if both[0] <= r.ts <= both[1]]
        print(f"{task_id}: {len(mapped)} mapped task instances in pool {pools} ran together for "
              f"{both[1] - both[0]:.1f}s ({hms(both[0])} - {hms(both[1])}): {len(inside)} requests then, "
              f"max {busiest_second(inside)} in 1 s, {rate(inside):.2f} req/s")

    # which task sent each NPI request (the shard split of maps/pending.sql), and where the limit broke
    npi_log = sorted(npi_log, key=lambda r: r.ts)
    numbers = [parse_qs(r.query).get("number", [""])[0] for r in npi_log]
    shard = npi_shards(state, numbers, args.concurrency) if numbers else {}
    who = [shard.get(n, -1) for n in numbers]
    gaps = sorted(b.ts - a.ts for a, b in zip(npi_log, npi_log[1:], strict=False))
    if gaps:
        def ms(q: float) -> str:
            return f"{gaps[min(len(gaps) - 1, int(q * len(gaps)))] * 1000:.0f}"

        print(f"NPI requests by task: {', '.join(f'npi_api[{k}] {who.count(k)}' for k in sorted(set(who)))}; "
              f"consecutive requests from different tasks: {sum(a != b for a, b in zip(who, who[1:], strict=False))} "
              f"of {len(gaps)}")
        print(f"NPI inter-arrival gaps (ms): min {ms(0)}, p1 {ms(0.01)}, p5 {ms(0.05)}, median {ms(0.5)}, "
              f"max {gaps[-1] * 1000:.0f}; limiter spacing {1000 * (1 + SAFETY_MARGIN) / args.rps:.0f}")
        k = max(1, int(args.rps))  # the limiter's send window: no k+1 requests within k * spacing
        spans = sorted(b.ts - a.ts for a, b in zip(npi_log, npi_log[k:], strict=False))
        if spans:
            print(f"NPI tightest {k + 1} consecutive requests: {', '.join(f'{s * 1000:.0f}' for s in spans[:3])} ms "
                  f"(over 1000 = within the limit; limiter send window {1000 * k * (1 + SAFETY_MARGIN) / args.rps:.0f})")
    excess = over_limit([r.ts for r in npi_log], args.rps)
    print(f"NPI 1 s windows holding more than {args.rps:g} requests: {len(excess)}")
    for i in excess[:5]:
        k = max(0, i - int(args.rps))
        seq = ", ".join(f"{hms(npi_log[x].ts)} npi_api[{who[x]}]" for x in range(k, i + 1))
        print(f"  {i - k + 1} within {npi_log[i].ts - npi_log[k].ts:.3f}s: {seq}")
    if args.keep:
        (tmp / "requests.json").write_text(json.dumps(
            [{"api": "npi", "task": f"npi_api[{w}]", "ts": r.ts, "status": r.status, "query": r.query}
             for r, w in zip(npi_log, who, strict=True)]
            + [{"api": "hcpcs", "ts": r.ts, "status": r.status, "query": r.query} for r in hcpcs_log]))

    npi_stamps = [r.ts for r in npi_log]
    return [
        (f"NPI Registry: max in any 1 s window <= {args.rps:g}", bool(npi_log) and busiest_second(npi_stamps) <= args.rps),
        (f"Clinical Tables: max in any 1 s window <= {args.rps:g}",
         busiest_second([r.ts for r in hcpcs_log]) <= args.rps),
        ("no 429 from either server", not any(r.status == 429 for r in npi_log + hcpcs_log)),
        ("NPI Registry: achieved >= 90 % of the limit", rate(npi_stamps) >= 0.9 * args.rps),
        ("npi_api mapped tasks ran together in pool npi_registry_api", overlaps["npi_api"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npis", type=int, default=300, help="distinct spending NPIs (about that many API requests)")
    parser.add_argument("--rps", type=float, default=2.0, help="requests_per_second of the run and the servers' limit")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--hcpcs-batch-size", type=int, default=None, help="default: the DAG's (100)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the maps run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and requests.json) and the databases")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed (default: only the run)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops everything
    print(machine_line())
    state = localenv.load_state()
    tmp = Path(tempfile.mkdtemp(prefix="bench_maps_sched_"))
    home, data, sandbox = tmp / "airflow", tmp / "data", tmp / "sandbox"
    for p in (home / "logs" / "services", data):
        p.mkdir(parents=True)
    services: Services | None = None
    servers: list[SandboxServer] = []
    run_ok = goals_ok = False
    try:
        t0 = time.monotonic()
        scale = SCALES["tiny"].with_overrides({"spending_npis": str(args.npis),
                                               "nppes_rows": str(max(600, args.npis + 10))})
        generate(sandbox, scale, only=["nucc", "nppes", "medicaid", "cpt"])
        burst = max(1, int(args.rps))
        # one server per API: the sandbox's token bucket is per client, and both APIs' clients are 127.0.0.1
        for _ in range(2):
            servers.append(SandboxServer(sandbox, rate_limit=args.rps, burst=burst).start())
        npi_srv, hcpcs_srv = servers
        print(f"sandbox: tiny with {args.npis} spending NPIs, generated in {time.monotonic() - t0:.1f}s; "
              f"NPI Registry + downloads on {npi_srv.url}, Clinical Tables on {hcpcs_srv.url}; "
              f"each {args.rps:g} req/s, burst {burst}, 429 beyond")

        port = free_port()
        env = bench_env(state, home, data, port, npi_srv.url, hcpcs_srv.url)
        t0 = time.monotonic()
        recreate_databases(state)
        run([AIRFLOW, "db", "migrate"], env, home / "db-migrate.log", "airflow db migrate")
        run([AIRFLOW, "pools", "import", str(ROOT / "config" / "pools.json")], env, home / "pools.log", "pools import")
        print(f"databases {META_DB} (migrated, pools imported) and {APP_DB} created in {time.monotonic() - t0:.1f}s")
        t0 = time.monotonic()
        run([sys.executable, "-c", DOWNLOAD], env, home / "download.log", "claimsflow_download (dag.test)")
        print(f"claimsflow_download (dag.test) done in {time.monotonic() - t0:.1f}s")
        for srv in servers:
            srv.clear_requests()

        t0 = time.monotonic()
        services = Services(env, home / "logs" / "services")
        services.start("api-server", "--port", str(port), "--host", "127.0.0.1")
        services.start("scheduler")
        services.start("dag-processor")
        api = Api(f"http://127.0.0.1:{port}", home / "passwords.json")
        api.wait_up(services)
        meta = psycopg.connect(db_url(state, META_DB))
        wait_dag_parsed(meta, services)
        print(f"api-server on :{port}, scheduler, dag-processor up and {DAG_ID} parsed in {time.monotonic() - t0:.1f}s")

        # the download's asset events must not start a run of their own (max_active_runs=1)
        meta.execute("DELETE FROM asset_dag_run_queue WHERE target_dag_id = %s", (DAG_ID,))
        meta.commit()
        conf = {"requests_per_second": args.rps, "concurrency": args.concurrency, "skip_nppes_bulk": True}
        if args.hcpcs_batch_size:
            conf["hcpcs_batch_size"] = args.hcpcs_batch_size
        run_id = f"bench_{uuid.uuid4().hex[:8]}"
        api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
        print(f"triggered {DAG_ID} run {run_id} through the REST API, conf {json.dumps(conf)}")
        t0 = time.monotonic()
        final = wait_run(meta, services, run_id, args.timeout)
        tis = task_rows(meta, run_id)
        others = meta.execute("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s AND run_id <> %s",
                              (DAG_ID, run_id)).fetchall()
        meta.rollback()
        meta.close()
        print(f"\nrun {run_id}: {final} in {time.monotonic() - t0:.0f}s; other runs of {DAG_ID}: {others or 'none'}")

        npi_log = [r for r in npi_srv.requests("/api") if not r.path.startswith("/api/hcpcs")]
        hcpcs_log = hcpcs_srv.requests("/api/hcpcs")
        goals = [("run succeeded", final == "success"), *report(args, state, tis, npi_log, hcpcs_log, tmp)]
        print()
        print(table([(name, "PASS" if met else "FAIL") for name, met in goals], ("goal", "result")))
        run_ok, goals_ok = final == "success", all(met for _, met in goals)
        for t in tis:
            if t[3] not in ("success", "skipped"):
                print(f"\n--- {t[0]}[{t[1]}] {t[3]}, log tail:\n{task_log_tail(home, run_id, t[0], t[1])}")
    finally:
        if services is not None:
            if not run_ok:
                for name in services.procs:
                    print(f"\n--- {name} log tail:\n{services.tail(name, 15)}")
            services.stop()
        for srv in servers:
            srv.stop()
        if args.keep:
            print(f"kept {tmp} and databases {META_DB}, {APP_DB}")
        else:
            drop_databases(state)
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if run_ok and (goals_ok or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())
