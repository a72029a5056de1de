-- Raw Medicare tables (one per source file, named from the file), the records that could not be
-- loaded, and the parsed FTS layouts.
CREATE SCHEMA IF NOT EXISTS medicare_raw;

-- Records a loader refused: wrong length, a value that does not fit its declared type. Nothing is
-- dropped silently: every input record is either in its table or here.
CREATE TABLE IF NOT EXISTS medicare_raw.ingest_rejects (
    table_name    text        NOT NULL,
    source_file   text        NOT NULL,
    record_number bigint      NOT NULL,
    kind          text        NOT NULL,  -- short_record | long_record | non_numeric | invalid_date | ...
    reason        text        NOT NULL,
    raw           bytea       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, source_file, record_number)
);

-- The layout each FTS describes, parsed once and kept visible.
CREATE TABLE IF NOT EXISTS claimsflow_meta.medicare_layouts (
    table_name    text PRIMARY KEY,
    year          integer     NOT NULL,
    fts_path      text        NOT NULL,
    fts_sha256    text        NOT NULL,
    record_length integer     NOT NULL,
    columns       integer     NOT NULL,
    layout        jsonb       NOT NULL,
    parsed_at     timestamptz NOT NULL DEFAULT now()
);
