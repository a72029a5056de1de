"""Create claimsflow's databases, role and extensions; record them in .local/state.json. Idempotent.

Two modes, chosen by the bootstrap:
- managed: a private cluster the bootstrap started; connect as its superuser (`--admin-url`), create the
  `claimsflow` role and the four databases (claimsflow, claimsflow_test, airflow, airflow_test).
- external: `--db-url` names a server the user runs (CLAIMSFLOW_DB_URL); the databases next to it
  (`<db>_test`, `airflow`, `airflow_test`, or `--airflow-db-url`) are created when missing and allowed.

`hll` (HyperLogLog) is created in both claimsflow databases: the QC tables need it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localenv import STATE_FILE

APP_ROLE = "claimsflow"


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def database_of(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SystemExit("provision: the URL must name a database (postgresql://user:pw@host:port/DBNAME)")
    return name


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def ensure_database(admin: psycopg.Connection, name: str, owner: str | None) -> None:
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        return
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        stmt = sql.SQL("{} OWNER {}").format(stmt, sql.Identifier(owner))
    admin.execute(stmt)
    print(f"[provision] created database {name}")


def ensure_hll(url: str) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS hll")
    except psycopg.Error as exc:
        raise SystemExit(
            f"provision: cannot create extension hll in {safe_url(url)}: {exc}".strip()
            + "\n  install the server's HyperLogLog package (Debian: postgresql-<version>-hll) and retry"
        ) from exc


def provision_managed(admin_url: str, app_password: str) -> dict[str, str]:
    parts = urlsplit(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        role = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        verb = "ALTER" if role else "CREATE"
        admin.execute(
            # CREATEROLE: the Medicare grant step creates the read-only role it grants SELECT to
            sql.SQL(verb + " ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(app_password)
            )
        )
        for name in ("claimsflow", "claimsflow_test", "airflow", "airflow_test"):
            ensure_database(admin, name, APP_ROLE)
    app_netloc = f"{APP_ROLE}:{quote(app_password, safe='')}@{parts.hostname}:{parts.port}"
    app = urlunsplit(("postgresql", app_netloc, "/claimsflow", "", ""))
    for db in ("claimsflow", "claimsflow_test"):
        ensure_hll(with_database(admin_url, db))  # as superuser: hll is not a trusted extension
    return {
        "claimsflow_db_url": app,
        "claimsflow_db_url_test": with_database(app, "claimsflow_test"),
        "airflow_db_url": with_database(app, "airflow"),
        "airflow_db_url_test": with_database(app, "airflow_test"),
    }


def provision_external(db_url: str, airflow_db_url: str | None) -> dict[str, str]:
    db = database_of(db_url)
    airflow_db_url = airflow_db_url or with_database(db_url, "airflow")
    urls = {
        "claimsflow_db_url": db_url,
        "claimsflow_db_url_test": with_database(db_url, f"{db}_test"),
        "airflow_db_url": airflow_db_url,
        "airflow_db_url_test": with_database(airflow_db_url, f"{database_of(airflow_db_url)}_test"),
    }
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for url in urls.values():
                ensure_database(conn, database_of(url), None)
    except psycopg.Error as exc:
        raise SystemExit(f"provision: cannot reach or prepare {safe_url(db_url)}: {exc}") from exc
    for key in ("claimsflow_db_url", "claimsflow_db_url_test"):
        ensure_hll(urls[key])
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", help="superuser URL of the managed cluster")
    parser.add_argument("--app-password-file", help="file holding the claimsflow role's password")
    parser.add_argument("--db-url", help="external claimsflow database URL (CLAIMSFLOW_DB_URL)")
    parser.add_argument("--airflow-db-url", help="external Airflow metadata database URL")
    parser.add_argument("--airflow-port", type=int, default=8080)
    args = parser.parse_args(argv)

    state = json.loads(STATE_FILE.read_text()) if STATE_FILE.exists() else {}
    if args.db_url:
        urls = provision_external(args.db_url, args.airflow_db_url)
        state["managed_postgres"] = False
    else:
        password = Path(args.app_password_file).read_text().strip()
        urls = provision_managed(args.admin_url, password)
        state["managed_postgres"] = True
    state.update(urls)
    # Secrets shared by every Airflow component; generated once, kept across runs.
    state.setdefault("fernet_key", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    state.setdefault("jwt_secret", secrets.token_urlsafe(32))
    state["airflow_port"] = args.airflow_port
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    os.chmod(tmp, 0o600)
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(STATE_FILE)
    print(f"[provision] databases ready: {', '.join(safe_url(u) for u in urls.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
