"""The local environment of a claimsflow checkout, in Airflow's own terms.

The bootstrap writes `.local/state.json` (database URLs, generated secrets); this module turns it into
the environment variables Airflow and claimsflow read: AIRFLOW_HOME, the metadata database, the
`claimsflow_db` connection, one connection per external endpoint (config/connections.json), the data
root. It is the single place those variables are defined: the Makefile evaluates its `exports` output
and the test suite calls `environment()` directly.

Profiles: `dev` (make demo / make airflow) and `test` (make test: separate databases and AIRFLOW_HOME so
a test run never touches the demo's data or a running scheduler).

Runs with the standard library only, so the bootstrap can call it with any python3.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
STATE_FILE = LOCAL / "state.json"
CONNECTIONS_FILE = ROOT / "config" / "connections.json"
PROFILES = ("dev", "test")


class EnvironmentNotReady(RuntimeError):
    """The checkout has not been bootstrapped yet."""


def load_state(state_file: Path = STATE_FILE) -> dict:
    if not state_file.exists():
        raise EnvironmentNotReady(f"{state_file} is missing: run `make bootstrap` (or `make test`) first")
    return json.loads(state_file.read_text())


def postgres_connection_json(url: str) -> str:
    """An Airflow connection (JSON form) for a postgresql:// URL."""
    parts = urlsplit(url)
    conn = {
        "conn_type": "postgres",
        "host": parts.hostname or "",
        "port": parts.port or 5432,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/"),
    }
    return json.dumps(conn)


def sqlalchemy_url(url: str) -> str:
    """The metadata-database URL in SQLAlchemy's form (psycopg2 driver, as Airflow documents)."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL for the Airflow metadata database, got {scheme}://")
    return f"postgresql+psycopg2://{rest}"


def endpoint_connections(connections_file: Path = CONNECTIONS_FILE, base_url: str | None = None) -> dict[str, str]:
    """AIRFLOW_CONN_* values for the external endpoints.

    With `base_url` (the sandbox server, e.g. http://127.0.0.1:8790) every endpoint points there instead
    of at its real host; paths stay the same, so the code cannot tell the difference.
    """
    defs = json.loads(connections_file.read_text())
    out = {}
    for conn_id, spec in defs.items():
        conn = {k: v for k, v in spec.items() if k != "description"}
        if base_url:
            parts = urlsplit(base_url)
            conn.update(host=parts.hostname, port=parts.port, schema=parts.scheme)
        out[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return out


def environment(profile: str = "dev", base_env: dict[str, str] | None = None, sandbox_url: str | None = None) -> dict[str, str]:
    """Every variable a claimsflow process needs, for one profile.

    Variables the user already set (a real connection, a data root) win over the defaults; the
    database ones for the `test` profile are always the test databases.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    base_env = dict(os.environ if base_env is None else base_env)
    state = load_state()
    suffix = "" if profile == "dev" else "_test"
    home = LOCAL / ("airflow" if profile == "dev" else "airflow-test")
    port = str(state.get("airflow_port", 8080))
    default_data = ROOT / "data" if profile == "dev" else LOCAL / "test-data"

    env: dict[str, str] = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__FERNET_KEY": state["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": state["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(state[f"airflow_db_url{suffix}"]),
        # The bundle's packages: `include` (domain code) from the checkout root, `claimsflow_airflow`
        # (operators, hooks) from plugins/. Airflow adds plugins/ itself; tests and tools need both.
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "AIRFLOW_CONN_CLAIMSFLOW_DB": postgres_connection_json(state[f"claimsflow_db_url{suffix}"]),
    }
    env.update(endpoint_connections(base_url=sandbox_url))
    data_dir = base_env.get("CLAIMSFLOW_DATA_DIR") or str(default_data)
    env["CLAIMSFLOW_DATA_DIR"] = data_dir
    env["AIRFLOW_VAR_CLAIMSFLOW_DATA_DIR"] = data_dir

    if profile == "dev":
        # A user's own definition of a connection wins (real credentials, another host).
        for key in list(env):
            if key.startswith("AIRFLOW_CONN_") and key in base_env and not sandbox_url:
                env[key] = base_env[key]
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["exports", "json"])
    parser.add_argument("--profile", default="dev", choices=PROFILES)
    parser.add_argument("--sandbox-url", default=None, help="point every external endpoint at this server")
    args = parser.parse_args(argv)
    try:
        env = environment(args.profile, sandbox_url=args.sandbox_url)
    except EnvironmentNotReady as exc:
        print(f"localenv: {exc}", file=sys.stderr)
        return 2
    if args.command == "json":
        print(json.dumps(env, indent=2))
    else:
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
