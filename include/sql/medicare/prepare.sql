-- Fresh build schemas for one processing run. Everything the run creates lives in these until
-- `publish.sql` swaps them in, so readers never see a half-built table. {medicare}, {audit} and {qc}
-- are the build schemas (…__next); their objects keep their references when the schemas are renamed.
DROP SCHEMA IF EXISTS {medicare} CASCADE;
DROP SCHEMA IF EXISTS {audit} CASCADE;
DROP SCHEMA IF EXISTS {qc} CASCADE;
CREATE SCHEMA {medicare};
CREATE SCHEMA {audit};
CREATE SCHEMA {qc};

-- Reference data, loaded with COPY right after this file runs.
CREATE TABLE {medicare}.us_states (
    ssa2 text PRIMARY KEY,      -- SSA state code, as the Medicare files carry it
    state_id text NOT NULL,     -- postal abbreviation
    fips2 text NOT NULL,
    state_name text NOT NULL
);
CREATE TABLE {medicare}.ssa_fips (   -- SSA county -> FIPS county
    ssa2 text NOT NULL,
    ssa3 text NOT NULL,
    fips2 text NOT NULL,
    fips3 text NOT NULL,
    county_name text,
    PRIMARY KEY (ssa2, ssa3)
);
CREATE TABLE {medicare}.zip_county (  -- USPS ZIP -> county, with the share of residences (HUD)
    zip integer NOT NULL,
    fips2 text NOT NULL,
    fips3 text NOT NULL,
    res_ratio numeric NOT NULL,
    PRIMARY KEY (zip, fips2, fips3)
);

-- The functions use SQL-standard bodies (RETURN …): PostgreSQL parses them at creation and tracks
-- what they call by OID, so they keep working when the build schema is renamed at publish (hll_of,
-- at the end, is the one exception).

-- Two-digit years: 50-99 are 19xx, 00-49 are 20xx (Medicare data starts in 1999). The seed's rule
-- (< 20 -> 20xx, 21-99 -> 19xx, NULL -> 2000) would turn a year 20 into 20 and a missing year into
-- 2000; a missing year takes the year of the file instead.
CREATE FUNCTION {medicare}.year4(y integer, file_year integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN y IS NULL THEN file_year
            WHEN y BETWEEN 0 AND 49 THEN 2000 + y
            WHEN y BETWEEN 50 AND 99 THEN 1900 + y
            ELSE y END;

-- Text to integer without exceptions: NULL unless the trimmed text is all digits.
CREATE FUNCTION {medicare}.to_int(s text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN btrim(s) ~ '^[0-9]{1,9}$' THEN btrim(s)::integer END;

-- A calendar date from its parts, NULL when it does not exist (no exception, so no per-row
-- subtransaction as a plpgsql EXCEPTION block would need).
CREATE FUNCTION {medicare}.safe_date(y integer, m integer, d integer) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN y BETWEEN 1800 AND 2200 AND m BETWEEN 1 AND 12 AND d >= 1
             AND d <= extract(day FROM (make_date(y, m, 1) + interval '1 month - 1 day'))::integer
            THEN make_date(y, m, d) END;

-- Character dates as the files carry them: YYYYMMDD, YYYY-MM-DD, DDMONYYYY (SAS date9) or YYYYDDD
-- (Julian). Blank, all zeros or impossible dates give NULL.
CREATE FUNCTION {medicare}.parse_date(s text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN upper(btrim(s)) ~ '^[0-9]{8}$'
        THEN {medicare}.safe_date(substr(btrim(s), 1, 4)::int, substr(btrim(s), 5, 2)::int, substr(btrim(s), 7, 2)::int)
    WHEN btrim(s) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
        THEN {medicare}.safe_date(substr(btrim(s), 1, 4)::int, substr(btrim(s), 6, 2)::int, substr(btrim(s), 9, 2)::int)
    WHEN upper(btrim(s)) ~ '^[0-9]{2}[A-Z]{3}[0-9]{4}$'
        THEN {medicare}.safe_date(substr(btrim(s), 6, 4)::int,
                                  (strpos('JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC', upper(substr(btrim(s), 3, 3))) + 2) / 3,
                                  substr(btrim(s), 1, 2)::int)
    WHEN btrim(s) ~ '^[0-9]{7}$' AND substr(btrim(s), 5, 3)::int BETWEEN 1 AND 366
         AND substr(btrim(s), 1, 4)::int BETWEEN 1800 AND 2200
        THEN make_date(substr(btrim(s), 1, 4)::int, 1, 1) + (substr(btrim(s), 5, 3)::int - 1)
END;

-- Numeric dates: a SAS date is days since 1960-01-01; a YYYYMMDD number (older NSAPH files) has eight
-- digits, with 0 for "no date". Which one a column holds is decided per column when the views are
-- generated (include/medicare/model.py), not per value.
CREATE FUNCTION {medicare}.sas_date(n double precision) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n BETWEEN -100000 AND 100000 THEN date '1960-01-01' + floor(n)::integer END;

CREATE FUNCTION {medicare}.yyyymmdd_date(n double precision) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n >= 10000101 AND n < 100000000
            THEN {medicare}.safe_date((n::bigint / 10000)::int, (n::bigint / 100 % 100)::int, (n::bigint % 100)::int) END;

-- ZIP codes: the 5-digit ZIP and the 4-digit extension from text ("12345", "123456789", "12345-6789")
-- or from a number (a 9-digit ZIP stored as a number has lost its leading zeros: 12345678 is 01234-5678).
CREATE FUNCTION {medicare}.zip5(s text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN btrim(s) ~ '^[0-9]{5}(-?[0-9]{4})?$' THEN substr(btrim(s), 1, 5)::integer END;
CREATE FUNCTION {medicare}.zip4(s text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN btrim(s) ~ '^[0-9]{5}-?[0-9]{4}$' THEN right(btrim(s), 4)::integer END;
CREATE FUNCTION {medicare}.zip5(n double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n > 0 AND n < 100000 THEN n::integer
            WHEN n >= 100000 AND n < 1000000000 THEN (n::bigint / 10000)::integer END;
CREATE FUNCTION {medicare}.zip4(n double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n >= 100000 AND n < 1000000000 THEN (n::bigint % 10000)::integer END;

-- The HLL of a set of codes (an admission's diagnoses), for approximate distinct counts: the same
-- value as coalesce(hll_add_agg(hll_hash_text(c)), hll_empty()) over the codes, built by adding them
-- one by one, which is 3x faster than the aggregate (it sets up a 128 kB state per call; see
-- benchmarks/bench_medicare_processing.py). PL/pgSQL names nothing in the build schema, so the
-- rename at publish does not matter; it resolves the hll functions with its creator's search_path.
CREATE FUNCTION {medicare}.hll_of(codes text[]) RETURNS hll
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT
AS $$
DECLARE
    h hll := hll_empty();
    code text;
BEGIN
    IF codes IS NOT NULL THEN
        FOREACH code IN ARRAY codes LOOP
            IF code IS NOT NULL THEN  -- as the aggregate, which skips NULLs
                h := hll_add(h, hll_hash_text(code));
            END IF;
        END LOOP;
    END IF;
    RETURN h;
END $$;
