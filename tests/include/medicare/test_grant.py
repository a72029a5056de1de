"""Read access for a role: after grant_select a real LOGIN role, connected with its own password, can read
a table, a view and a materialized view (and what is created later) and can change nothing; the command
line does the same, refuses bad input with exit code 2 and never prints a password."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from include.common.errors import DatabaseError, InvalidIdentifier
from include.medicare.grant import RoleNotFound, connection_params, grant_select

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Role:
    name: str
    password: str
    conninfo: str  # logs in as this role


def _drop_role(admin_conninfo: str, name: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True, options="-c lock_timeout=10s") as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            role = sql.Identifier(name)
            # DROP OWNED (which also revokes the role's privileges and default privileges in this
            # database) needs the role's privileges: CREATEROLE (15) or the creator's ADMIN OPTION
            # (16+) lets us take them.
            admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(role))
            admin.execute(sql.SQL("DROP ROLE {}").format(role))


class Roles:
    """Creates uniquely named LOGIN roles with a password; the fixture drops every role created or
    `track`ed once the test is over."""

    def __init__(self, db_conninfo: str) -> None:
        self.db_conninfo = db_conninfo
        self.names: list[str] = []

    def track(self, name: str) -> str:
        self.names.append(name)
        return name

    def create(self) -> Role:
        name = self.track(f"test_reader_{uuid.uuid4().hex[:10]}")
        password = secrets.token_urlsafe(18)
        with psycopg.connect(self.db_conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
        return Role(name, password, make_conninfo(self.db_conninfo, user=name, password=password))


@pytest.fixture
def roles(pg, db_conninfo) -> Iterator[Roles]:
    # The app role creates the roles: provisioning gives it CREATEROLE for the grant step's --create-role.
    if not pg.execute("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        pytest.skip("the app role may not create roles (CREATEROLE): run `make bootstrap` to provision it")
    pg.rollback()
    made = Roles(db_conninfo)
    yield made
    pg.rollback()  # release the test's locks before DROP OWNED revokes on its objects
    for name in made.names:
        _drop_role(db_conninfo, name)


@pytest.fixture
def objects(pg, scratch_schema) -> str:
    """A table, a view and a materialized view in a scratch schema owned by the app role."""
    s = sql.Identifier(scratch_schema)
    for stmt in (
        "CREATE TABLE {s}.claims (id int PRIMARY KEY, state text)",
        "INSERT INTO {s}.claims VALUES (1, 'MA'), (2, 'MA'), (3, 'NY')",
        "CREATE VIEW {s}.claims_ma AS SELECT * FROM {s}.claims WHERE state = 'MA'",
        "CREATE MATERIALIZED VIEW {s}.claims_per_state AS SELECT state, count(*) AS n FROM {s}.claims GROUP BY state",
    ):
        pg.execute(sql.SQL(stmt).format(s=s))
    pg.commit()
    return scratch_schema


def _expected_statements(schema: str, role: str, owner: str) -> list[str]:
    return [
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "{schema}" GRANT SELECT ON TABLES TO "{role}"',
    ]


def _reads(role: Role, schema: str) -> dict[str, list[tuple]]:
    s = sql.Identifier(schema)
    with psycopg.connect(role.conninfo) as conn:
        return {
            "claims": conn.execute(sql.SQL("SELECT id, state FROM {}.claims ORDER BY id").format(s)).fetchall(),
            "claims_ma": conn.execute(sql.SQL("SELECT id FROM {}.claims_ma ORDER BY id").format(s)).fetchall(),
            "claims_per_state": conn.execute(
                sql.SQL("SELECT state, n FROM {}.claims_per_state ORDER BY state").format(s)
            ).fetchall(),
        }


EXPECTED_READS = {
    "claims": [(1, "MA"), (2, "MA"), (3, "NY")],
    "claims_ma": [(1,), (2,)],
    "claims_per_state": [("MA", 2), ("NY", 1)],
}

FORBIDDEN = [
    "INSERT INTO {s}.claims VALUES (9, 'NY')",
    "INSERT INTO {s}.claims_ma VALUES (9, 'MA')",  # an updatable view
    "UPDATE {s}.claims SET state = 'NY'",
    "DELETE FROM {s}.claims",
    "SELECT * FROM {s}.claims FOR UPDATE",
    "TRUNCATE {s}.claims",
    "CREATE TABLE {s}.mine (id int)",
    "CREATE VIEW {s}.mine AS SELECT 1",
    "REFRESH MATERIALIZED VIEW {s}.claims_per_state",
    "ALTER TABLE {s}.claims ADD COLUMN x int",
    "DROP VIEW {s}.claims_ma",
]


def test_the_role_reads_all_three_and_changes_nothing(pg, objects, roles):
    reader = roles.create()
    with psycopg.connect(reader.conninfo) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(sql.SQL("SELECT * FROM {}.claims").format(sql.Identifier(objects)))

    statements = grant_select(pg, reader.name, [objects])
    pg.commit()

    assert statements == _expected_statements(objects, reader.name, pg.info.user)
    assert _reads(reader, objects) == EXPECTED_READS
    with psycopg.connect(reader.conninfo, autocommit=True) as conn:
        for stmt in FORBIDDEN:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql.SQL(stmt).format(s=sql.Identifier(objects)))

    # Exactly USAGE on the schema, SELECT on the relations and SELECT by default: nothing else.
    granted = pg.execute(
        """SELECT 'schema', a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a
            WHERE n.nspname = %(s)s AND a.grantee = %(r)s::regrole
           UNION SELECT c.relname, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
            WHERE c.relnamespace = %(s)s::regnamespace AND a.grantee = %(r)s::regrole
           UNION SELECT 'default ' || d.defaclobjtype::text, a.privilege_type FROM pg_default_acl d, aclexplode(d.defaclacl) a
            WHERE d.defaclnamespace = %(s)s::regnamespace AND a.grantee = %(r)s::regrole""",
        {"s": objects, "r": reader.name},
    ).fetchall()
    assert sorted(granted) == [
        ("claims", "SELECT"),
        ("claims_ma", "SELECT"),
        ("claims_per_state", "SELECT"),
        ("default r", "SELECT"),
        ("schema", "USAGE"),
    ]


def test_objects_created_later_are_readable_too(pg, objects, roles):
    reader = roles.create()
    grant_select(pg, reader.name, [objects])
    pg.commit()
    s = sql.Identifier(objects)
    pg.execute(sql.SQL("CREATE TABLE {}.later AS SELECT 42 AS answer").format(s))
    pg.execute(sql.SQL("CREATE MATERIALIZED VIEW {s}.later_mv AS SELECT answer + 1 AS more FROM {s}.later").format(s=s))
    pg.commit()
    with psycopg.connect(reader.conninfo) as conn:
        assert conn.execute(sql.SQL("SELECT answer FROM {}.later").format(s)).fetchone() == (42,)
        assert conn.execute(sql.SQL("SELECT more FROM {}.later_mv").format(s)).fetchone() == (43,)


def test_a_missing_schema_is_skipped_with_a_warning(pg, objects, roles, caplog):
    reader = roles.create()
    statements = grant_select(pg, reader.name, [objects, "no_such_schema_here", objects])
    pg.commit()
    assert statements == _expected_statements(objects, reader.name, pg.info.user)
    assert "schema no_such_schema_here does not exist: skipped" in caplog.text
    assert _reads(reader, objects) == EXPECTED_READS


@pytest.mark.parametrize(
    "role, schemas, error",
    [
        ("Robert'); DROP TABLE claims; --", ["public"], InvalidIdentifier),
        ("public", ["public"], InvalidIdentifier),
        ("pg_read_all_data", ["public"], InvalidIdentifier),
        ("", ["public"], InvalidIdentifier),
        ("claimsflow", ["medicare; drop"], InvalidIdentifier),
        ("no_such_role_anywhere_x", ["public"], RoleNotFound),
    ],
)
def test_bad_input_is_refused_before_any_grant(pg, role, schemas, error):
    with pytest.raises(error):
        grant_select(pg, role, schemas)


def test_a_grant_that_postgres_only_warns_about_is_an_error(pg, objects, roles):
    # The reader may read but does not own the objects: its GRANTs to another role only warn.
    reader, other = roles.create(), roles.create()
    grant_select(pg, reader.name, [objects])
    pg.commit()
    with psycopg.connect(reader.conninfo) as conn, pytest.raises(DatabaseError, match="still cannot read"):
        grant_select(conn, other.name, [objects])


# --- command line ----------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None, drop_env: bool = False) -> subprocess.CompletedProcess:
    environ = {**os.environ, **(env or {})}
    if drop_env:
        environ.pop("AIRFLOW_CONN_CLAIMSFLOW_DB")
    return subprocess.run(
        [sys.executable, "-m", "include.medicare.grant", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _app_password() -> str:
    return json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])["password"]


def test_cli_grants_and_commits_without_printing_the_password(objects, roles):
    reader = roles.create()
    done = _cli("--role", reader.name, "--schema", objects, "--schema", "no_such_schema_here")
    assert done.returncode == 0, done.stderr
    owner = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])["login"]
    assert done.stdout.splitlines() == [
        *(f"{s};" for s in _expected_statements(objects, reader.name, owner)),
        "-- committed: 3 statements",
    ]
    assert "schema no_such_schema_here does not exist: skipped" in done.stderr
    assert _app_password() not in done.stdout + done.stderr
    assert _reads(reader, objects) == EXPECTED_READS  # committed: visible from another session


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "Robert'); DROP TABLE claims; --"], "is not a plain identifier"),
        (["--role", "public"], "is reserved by PostgreSQL"),
        (["--role", "no_such_role_anywhere_x"], "role 'no_such_role_anywhere_x' does not exist"),
        (["--role", "claimsflow", "--schema", "Medicare"], "schema name 'Medicare' is not a plain identifier"),
        (["--role", "claimsflow", "--dsn", "password=NotPrinted123 host"], "--dsn is not a valid"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args, message):
    done = _cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr
    assert _app_password() not in done.stderr and "NotPrinted123" not in done.stderr


def test_cli_without_connection_settings_exits_2():
    done = _cli("--role", "claimsflow", drop_env=True)
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "grant: pass --dsn or set AIRFLOW_CONN_CLAIMSFLOW_DB (the claimsflow_db Airflow connection)",
    )


def test_cli_database_error_exits_1_without_the_password():
    done = _cli("--role", "claimsflow", "--dsn", "host=127.0.0.1 port=1 user=x dbname=y password=NotPrinted123")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "connection" in done.stderr
    assert "NotPrinted123" not in done.stdout + done.stderr


def _airflow_connection(role: Role) -> dict[str, str]:
    """The claimsflow_db Airflow connection, logging in as `role` instead."""
    conn = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    return {"AIRFLOW_CONN_CLAIMSFLOW_DB": json.dumps({**conn, "login": role.name, "password": role.password})}


def test_cli_create_role_makes_a_nologin_role(pg, objects, roles):
    name = roles.track(f"test_reader_{uuid.uuid4().hex[:10]}")
    done = _cli("--role", name, "--schema", objects, "--create-role")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f'CREATE ROLE "{name}" NOLOGIN;'
    assert lines[1:-1] == [f"{s};" for s in _expected_statements(objects, name, pg.info.user)]
    assert _app_password() not in done.stdout + done.stderr
    assert pg.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (name,)).fetchone() == (False,)
    readable = pg.execute(
        sql.SQL("SELECT has_table_privilege(%s, '{}.claims_per_state'::regclass, 'SELECT')").format(
            sql.Identifier(objects)
        ),
        (name,),
    ).fetchone()
    assert readable == (True,)
    pg.rollback()

    again = _cli("--role", name, "--schema", objects, "--create-role")  # exists now: only the grants
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:-1] == lines[1:-1]


def test_cli_create_role_without_the_right_is_a_clear_error(roles):
    # Connected as a role without CREATEROLE.
    plain = roles.create()
    wanted = roles.track(f"test_reader_{uuid.uuid4().hex[:10]}")
    done = _cli("--role", wanted, "--create-role", env=_airflow_connection(plain))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and "permission denied to create role" in done.stderr
    assert plain.password not in done.stdout + done.stderr


def test_connection_params_from_the_airflow_connection():
    json_conn = {
        "conn_type": "postgres",
        "host": "db",
        "port": 5433,
        "login": "u",
        "password": "p w",
        "schema": "claims",
        "extra": json.dumps({"sslmode": "require", "cursor": "dictcursor"}),
    }
    assert connection_params(None, {"AIRFLOW_CONN_CLAIMSFLOW_DB": json.dumps(json_conn)}) == {
        "host": "db",
        "port": 5433,
        "dbname": "claims",
        "user": "u",
        "password": "p w",
        "sslmode": "require",
    }
    uri = "postgres://u:p%20w@db:5433/claims"
    assert connection_params(None, {"AIRFLOW_CONN_CLAIMSFLOW_DB": uri}) == {
        "host": "db",
        "port": "5433",
        "dbname": "claims",
        "user": "u",
        "password": "p w",
    }
    assert connection_params("host=db dbname=claims", {}) == {"host": "db", "dbname": "claims"}
