-- Request slots shared by every worker that calls one external API: each caller reserves the next
-- slot (interval_s apart) under the row lock, then sleeps until it. This is what makes the
-- requests-per-second limit hold across concurrent tasks and machines, not per task.
CREATE SCHEMA IF NOT EXISTS claimsflow_meta;

CREATE TABLE IF NOT EXISTS claimsflow_meta.rate_limits (
    name       text PRIMARY KEY,
    next_at    timestamptz      NOT NULL,
    interval_s double precision NOT NULL CHECK (interval_s > 0)
);
