"""(Not named http.py: Airflow imports every plugins/ file under its bare stem, which would shadow the
stdlib `http`.)

The HTTP hook of every external endpoint: an Airflow connection in, a rate-limited, retrying
`include.http.client.HttpClient` out.

Connection fields: host (a host name, or a full base URL), schema (http/https, default https), port,
login/password (basic auth, never logged), and extras:

    {"rate_limit": 2.0, "burst": 2, "timeout": 60, "connect_timeout": 10, "retries": 5, "backoff": 1.0,
     "headers": {"X-Api-Key": "..."}}

Concurrency across tasks is capped by the Airflow pool of the endpoint (config/pools.json). The rate
limit paces one task's requests; with `shared_limit="<name>"` it is a PgRateLimiter in claimsflow_db
instead, one budget for every task and worker that uses the same name (the map builders' APIs).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.http.hooks.http import HttpHook

from include.http.client import HttpClient, RetryPolicy


class ClaimsflowHttpHook(HttpHook):
    """The providers' HttpHook (same `http` connection type and form, its `run()` still works) with
    `get_client()`: the rate-limited, retrying client the domain code uses."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "http"
    hook_name = "claimsflow HTTP"

    def __init__(self, http_conn_id: str = default_conn_name, *, rate_limit: float | None = None,
                 shared_limit: str | None = None, **kwargs: Any) -> None:
        super().__init__(method=kwargs.pop("method", "GET"), http_conn_id=http_conn_id, **kwargs)
        self.http_conn_id = http_conn_id
        self.rate_limit = rate_limit
        self.shared_limit = shared_limit
        self.limiter: Any = None

    def endpoint_base(self, conn: Any) -> str:
        host = (conn.host or "").strip()
        if "://" in host:
            base = host.rstrip("/")
        else:
            scheme = (conn.schema or "https").strip() or "https"
            base = f"{scheme}://{host}"
            if conn.port:
                base += f":{conn.port}"
        return base

    def get_client(self) -> HttpClient:
        conn = self.get_connection(self.http_conn_id)
        extra = conn.extra_dejson or {}
        retry = RetryPolicy(attempts=int(extra.get("retries", 5)), backoff=float(extra.get("backoff", 1.0)))
        timeout = (float(extra.get("connect_timeout", 10)), float(extra.get("timeout", 60)))
        rate = self.rate_limit if self.rate_limit is not None else extra.get("rate_limit")
        auth = (conn.login, conn.password) if conn.login else None
        if self.shared_limit and rate:
            from claimsflow_airflow.hooks.postgres import ClaimsflowPostgresHook
            from include.http.pg_limiter import PgRateLimiter

            def connect():
                raw = ClaimsflowPostgresHook().get_conn()
                raw.autocommit = False
                return raw

            self.limiter = PgRateLimiter(connect, self.shared_limit, float(rate))
        return HttpClient(
            self.endpoint_base(conn),
            rate_limit=float(rate) if rate else None,
            burst=int(extra["burst"]) if extra.get("burst") else None,
            timeout=timeout,
            retry=retry,
            headers=dict(extra.get("headers") or {}),
            auth=auth,
            limiter=self.limiter,
        )

    def close(self) -> None:
        """Release the shared limiter's database connection."""
        if self.limiter is not None:
            self.limiter.close()
