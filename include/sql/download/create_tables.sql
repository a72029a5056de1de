-- claimsflow_meta.download_manifest: every file the download DAGs fetched, verified or rejected.
-- One row per (dataset, path) attempt outcome; the newest 'done' row of a path is its current state.
CREATE SCHEMA IF NOT EXISTS claimsflow_meta;

CREATE TABLE IF NOT EXISTS claimsflow_meta.download_manifest (
    download_id        bigserial   PRIMARY KEY,
    dataset            text        NOT NULL,  -- medicaid_spending, nppes_monthly, nppes_weekly, cpt, nucc, hop_teaming
    version            text,                  -- e.g. the NPPES bundle month '2026-11'
    url                text        NOT NULL,
    path               text        NOT NULL,
    bytes              bigint,
    bytes_transferred  bigint,
    sha256             text,
    etag               text,
    last_modified      text,
    status             text        NOT NULL CHECK (status IN ('downloaded', 'resumed', 'unchanged', 'reused',
                                                               'extracted', 'failed', 'quarantined', 'corrupt')),
    error_message      text,
    fetched_at         timestamptz NOT NULL DEFAULT now(),
    dag_id             text,
    run_id             text,
    task_id            text,
    details            jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS download_manifest_dataset_idx
    ON claimsflow_meta.download_manifest (dataset, status, fetched_at DESC);
