-- The published Hop Teaming tables, partitioned by year: a year is replaced by swapping its
-- partitions (publish.sql) in one transaction.
CREATE SCHEMA IF NOT EXISTS hop;
CREATE TABLE IF NOT EXISTS hop.nucc_taxonomy (
    code text PRIMARY KEY, grouping text, classification text, specialization text, display_name text
);
CREATE TABLE IF NOT EXISTS hop.npi_spending (
    npi text NOT NULL, role text NOT NULL, claims double precision, beneficiaries double precision,
    paid double precision, PRIMARY KEY (npi, role)
);
CREATE TABLE IF NOT EXISTS hop.data_quality (
    year integer NOT NULL, check_name text NOT NULL, rows bigint NOT NULL, PRIMARY KEY (year, check_name)
);
CREATE TABLE IF NOT EXISTS hop.loads (
    year integer PRIMARY KEY, source_file text NOT NULL, zip_path text NOT NULL, lines bigint NOT NULL,
    clean_edges bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now()
);
