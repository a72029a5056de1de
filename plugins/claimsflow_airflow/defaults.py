"""What every claimsflow DAG shares: owner, retries, the start date DAGs count from."""

from __future__ import annotations

from datetime import timedelta

import pendulum

OWNER = "claimsflow"
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}
