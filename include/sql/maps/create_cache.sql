-- Caches of the map builders: one row per identifier, the last outcome of resolving it.
-- status: found | not_found | error | invalid; source: bulk | fallback | api | input (invalid NPIs)
-- Safe for many workers and reruns: rows are upserted (see upsert_cache.sql); an error never
-- replaces a definite answer.
CREATE SCHEMA IF NOT EXISTS maps;

CREATE TABLE IF NOT EXISTS maps.npi_cache (
    npi              text PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('found', 'not_found', 'error', 'invalid')),
    source           text NOT NULL CHECK (source IN ('bulk', 'api', 'input')),
    url              text,
    request_params   jsonb,
    api_run_id       text,
    requested_at_utc timestamptz,
    error_message    text,
    response_json    jsonb,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS maps.hcpcs_cache (
    hcpcs_code       text PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('found', 'not_found', 'error', 'invalid')),
    source           text NOT NULL CHECK (source IN ('fallback', 'api', 'input')),
    url              text,
    request_params   jsonb,
    api_run_id       text,
    requested_at_utc timestamptz,
    error_message    text,
    response_json    jsonb,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The identifiers of the current input (the spending parquet), replaced by each run.
CREATE TABLE IF NOT EXISTS maps.npi_wanted (npi text PRIMARY KEY, luhn_valid boolean NOT NULL);
CREATE TABLE IF NOT EXISTS maps.hcpcs_wanted (hcpcs_code text PRIMARY KEY);
