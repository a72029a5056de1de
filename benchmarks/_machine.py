"""What every benchmark shares: the machine line it prints first, its table layout, and the database
it measures against (the `claimsflow_db` connection of the environment)."""

from __future__ import annotations

import json
import os
import platform


def machine_line() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"machine: {os.cpu_count()} cores, {mem_gib:.1f} GiB RAM, Python {platform.python_version()}, {platform.machine()}"


def table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    cells = [headers, *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def db_conninfo(dbname: str | None = None) -> str:
    """libpq conninfo of the `claimsflow_db` connection (AIRFLOW_CONN_CLAIMSFLOW_DB), optionally another database."""
    c = json.loads(os.environ["AIRFLOW_CONN_CLAIMSFLOW_DB"])
    return (f"host={c['host']} port={c['port']} dbname={dbname or c['schema']} user={c['login']} "
            f"password={c['password']}")


def plain_copy_seconds(conn, table_name: str, columns_ddl: str, csv_path, *, header: bool = False,
                       block: int = 1 << 22) -> tuple[float, int]:
    """The baseline every load is compared with: a fresh UNLOGGED table (`columns_ddl`) filled by a
    plain `COPY … FROM STDIN (FORMAT csv)` of the file, as is; dropped afterwards. (seconds, rows)"""
    import time

    conn.execute(f"DROP TABLE IF EXISTS {table_name}")
    conn.execute(f"CREATE UNLOGGED TABLE {table_name} ({columns_ddl})")
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur, open(csv_path, "rb") as f:
        with cur.copy(f"COPY {table_name} FROM STDIN (FORMAT csv, HEADER {'true' if header else 'false'})") as copy:
            while chunk := f.read(block):
                copy.write(chunk)
        rows = cur.rowcount
    conn.commit()
    seconds = time.perf_counter() - t0
    conn.execute(f"DROP TABLE {table_name}")
    conn.commit()
    return seconds, rows
