"""Read access to the Medicare schemas for a role (analysts, Superset): USAGE and SELECT, nothing else.

    python -m include.medicare.grant --role ROLE [--schema S ...] [--dsn DSN] [--create-role]

For each schema that exists: `GRANT USAGE ON SCHEMA`, `GRANT SELECT ON ALL TABLES IN SCHEMA` (tables,
views, materialized views) and `ALTER DEFAULT PRIVILEGES ... GRANT SELECT ON TABLES`, so that what the
schema's owner creates later (a rebuilt table, a new year's view) is readable too. The result is
checked: a GRANT by a role that does not own the objects only warns, it does not fail.

The connection comes from `--dsn`, else from the `claimsflow_db` Airflow connection in
$AIRFLOW_CONN_CLAIMSFLOW_DB, so the password need not appear on a command line; it is never printed.
Exit codes: 0 done, 1 database error, 2 bad input (unsafe name, role missing, no connection settings).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from include.common.errors import ConfigurationError, DatabaseError, InvalidIdentifier
from include.db.postgres import read_sql, validate_identifier

log = logging.getLogger("claimsflow.medicare.grant")

DEFAULT_SCHEMAS = ("medicare", "medicare_audit", "medicare_qc", "medicare_raw")
CONNECTION_ENV = "AIRFLOW_CONN_CLAIMSFLOW_DB"
# Names PostgreSQL reads as something else than a role (`"public"` is every role) or reserves.
_RESERVED_ROLES = frozenset({"public", "none", "current_user", "current_role", "session_user"})
_LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options")


class RoleNotFound(ConfigurationError):
    """The role to grant to does not exist."""


def validate_role(role: str) -> str:
    """`role` if it is a plain identifier that names an ordinary role, else raise InvalidIdentifier."""
    validate_identifier(role, "role name")
    if role in _RESERVED_ROLES or role.startswith("pg_"):
        raise InvalidIdentifier(f"role name {role!r} is reserved by PostgreSQL")
    return role


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def create_role(conn: psycopg.Connection, role: str) -> str | None:
    """Create `role` NOLOGIN unless it exists; return the statement run, or None."""
    validate_role(role)
    if role_exists(conn, role):
        return None
    stmt = sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role))
    return _run(conn, stmt, source=role)


def grant_select(conn: psycopg.Connection, role: str, schemas: Sequence[str]) -> list[str]:
    """Let `role` read every table, view and materialized view of `schemas`, now and later.

    Schemas that do not exist are skipped with a warning. Runs in the caller's transaction: nothing
    is committed here. Returns the statements run, for the logs.
    """
    validate_role(role)
    wanted = list(dict.fromkeys(validate_identifier(s, "schema name") for s in schemas))
    if not role_exists(conn, role):
        raise RoleNotFound(f"role {role!r} does not exist (create it first, e.g. with --create-role)")

    done: list[str] = []
    granted: list[str] = []
    for schema in wanted:
        row = conn.execute(
            "SELECT r.rolname, pg_has_role(current_user, n.nspowner, 'MEMBER'), current_user"
            "  FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = %s",
            (schema,),
        ).fetchone()
        if row is None:
            log.warning("schema %s does not exist: skipped", schema)
            continue
        owner, acts_as_owner, me = row
        if not acts_as_owner:
            # Default privileges belong to the creating role; we may only set our own.
            log.warning(
                "connected as %s, not as %s (owner of %s): default privileges set for %s only", me, owner, schema, me
            )
        creator = owner if acts_as_owner else me
        target, grantee = sql.Identifier(schema), sql.Identifier(role)
        for stmt in (
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(target, grantee),
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(target, grantee),
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                sql.Identifier(creator), target, grantee
            ),
        ):
            done.append(_run(conn, stmt, source=schema))
        granted.append(schema)

    if granted:
        missing = conn.execute(read_sql("medicare/grant_select.sql"), {"role": role, "schemas": granted}).fetchall()
        if missing:
            names = ", ".join(schema if rel is None else f"{schema}.{rel}" for schema, rel in missing)
            raise DatabaseError(
                f"role {role} still cannot read {names}: run as the owner of these objects "
                f"(connected as {conn.info.user})",
                source=role,
            )
    return done


def _run(conn: psycopg.Connection, stmt: sql.Composable, *, source: str) -> str:
    text = stmt.as_string(conn)
    try:
        conn.execute(stmt)
    except psycopg.Error as exc:
        raise DatabaseError(f"{text}: {_first_line(str(exc))}", source=source) from exc
    return text


# --- command line ----------------------------------------------------------------------------------


def connection_params(dsn: str | None, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """psycopg.connect() keywords from `dsn`, else from the Airflow connection in $AIRFLOW_CONN_CLAIMSFLOW_DB.

    Errors never quote the value: it may hold a password.
    """
    if dsn is not None:
        try:
            return conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ConfigurationError("--dsn is not a valid libpq connection string or postgresql:// URL") from None
    raw = environ.get(CONNECTION_ENV, "").strip()
    if not raw:
        raise ConfigurationError(f"pass --dsn or set {CONNECTION_ENV} (the claimsflow_db Airflow connection)")
    try:
        if not raw.startswith("{"):
            return conninfo_to_dict(raw)  # Airflow's URI form; libpq reads postgres:// and postgresql://
        conn = json.loads(raw)
        extra = conn.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
        params = {
            "host": conn.get("host"),
            "port": conn.get("port"),
            "dbname": conn.get("schema"),
            "user": conn.get("login"),
            "password": conn.get("password"),
            **{k: extra[k] for k in _LIBPQ_EXTRAS if k in extra},
        }
    except (ValueError, AttributeError, psycopg.ProgrammingError):
        raise ConfigurationError(f"{CONNECTION_ENV} is neither an Airflow connection in JSON nor a URI") from None
    return {k: v for k, v in params.items() if v not in (None, "")}


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.medicare.grant",
        description="Grant a role read access (USAGE + SELECT) to the Medicare schemas.",
    )
    parser.add_argument("--role", required=True, help="the role that gets read access")
    parser.add_argument(
        "--schema",
        action="append",
        dest="schemas",
        metavar="SCHEMA",
        help=f"a schema to open (repeatable; default: {' '.join(DEFAULT_SCHEMAS)})",
    )
    parser.add_argument(
        "--dsn",
        help=f"libpq connection string or URL (default: ${CONNECTION_ENV}); keep the password in PGPASSWORD or ~/.pgpass",
    )
    parser.add_argument("--create-role", action="store_true", help="create the role (NOLOGIN) if it does not exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="grant: %(levelname)s %(message)s", stream=sys.stderr)

    def fail(code: int, message: str) -> int:
        print(f"grant: {_first_line(_redact(message, secret))}", file=sys.stderr)
        return code

    secret = None
    try:
        validate_role(args.role)
        schemas = [validate_identifier(s, "schema name") for s in args.schemas or DEFAULT_SCHEMAS]
        params = connection_params(args.dsn)
    except (InvalidIdentifier, ConfigurationError) as exc:
        return fail(2, str(exc))
    secret = params.get("password")

    statements: list[str] = []
    try:
        with psycopg.connect(**params) as conn:  # commits on success, rolls back on error
            if args.create_role:
                created = create_role(conn, args.role)
                statements += [created] if created else []
            statements += grant_select(conn, args.role, schemas)
    except RoleNotFound as exc:
        return fail(2, str(exc))
    except (psycopg.Error, DatabaseError) as exc:
        return fail(1, str(exc))
    for stmt in statements:
        print(f"{stmt};")
    print(f"-- committed: {len(statements)} statements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
