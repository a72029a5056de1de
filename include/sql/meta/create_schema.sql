-- claimsflow_meta: what was loaded, from which file, with how many rows, by which run.
-- Idempotent; later areas add their own tables here with files of their own.
CREATE SCHEMA IF NOT EXISTS claimsflow_meta;

CREATE TABLE IF NOT EXISTS claimsflow_meta.load_manifest (
    load_id          bigserial PRIMARY KEY,
    dataset          text        NOT NULL,  -- what kind of data (nppes_monthly, medicare_raw, ...)
    target           text        NOT NULL,  -- the table or file written (schema.table or a path)
    source_path      text,                  -- the file it came from
    source_bytes     bigint,
    source_checksum  text,                  -- sha256 of the source where known
    row_count        bigint,
    status           text        NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    error_message    text,
    dag_id           text,
    run_id           text,
    task_id          text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS load_manifest_target_idx
    ON claimsflow_meta.load_manifest (target, status, finished_at DESC);

CREATE TABLE IF NOT EXISTS claimsflow_meta.healthcheck (
    checked_at            timestamptz NOT NULL DEFAULT now(),
    run_id                text,
    server_version        text        NOT NULL,
    hll_version           text        NOT NULL,
    copy_rows             bigint      NOT NULL,
    copy_seconds          double precision NOT NULL,
    hll_estimate          bigint      NOT NULL,
    data_root             text        NOT NULL,
    data_root_free_bytes  bigint      NOT NULL
);
