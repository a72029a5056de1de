-- medicare.enrollments: one row per beneficiary, year and state (the primary key). Where the records
-- of one enrollment disagree, an arbitrary but deterministic value (the largest) is kept and the
-- *_list / residence_counties / zips columns list every value seen. fips3_valdiated (sic, the seed's
-- name) says the ZIP lies in the county according to the ZIP->county crosswalk.
--
-- Speed (benchmarks/bench_medicare_processing.py): nearly every enrollment has one record, whose
-- values are its lists; only enrollments with several records sort their collected values into
-- distinct lists, instead of a sort per list and enrollment for all of them. The table is created
-- with its generated columns and filled once (adding them afterwards rewrote it).
-- The groups stream over the _ps index (_ps is stored in bene_id order): ANALYZE's sample
-- underestimates the distinct bene_ids (7x at 10M records), so the planner would hash-aggregate
-- with spills to disk instead.
SET LOCAL enable_hashagg = off;
CREATE TABLE {medicare}.enrollments (
    bene_id text,
    year integer,
    state text,
    age integer,
    age_min integer,
    orec integer,
    curec integer,
    state_iso text,
    fips2 text,
    fips3 text,
    fips3_is_approximated boolean,
    ssa2 text,
    ssa3 text,
    ssa2_list text,
    ssa3_list text,
    residence_county text,
    residence_counties text,
    fips5 text,
    zip integer,
    zips text,
    died boolean,
    hmo_indicators text[],
    hmo_cvg_count integer,
    buyin_indicators text[],
    buyin_cvg_count integer,
    source_files text,
    record_numbers bigint[],
    state_count integer,
    fips3_valdiated boolean,
    hmo boolean GENERATED ALWAYS AS (hmo_cvg_count > 0) STORED,
    buyin boolean GENERATED ALWAYS AS (buyin_cvg_count > 0) STORED,
    bene hll_hashval GENERATED ALWAYS AS (hll_hash_text(bene_id)) STORED
);
INSERT INTO {medicare}.enrollments (
    bene_id, year, state, age, age_min, orec, curec, state_iso, fips2, fips3, fips3_is_approximated, ssa2, ssa3,
    ssa2_list, ssa3_list, residence_county, residence_counties, fips5, zip, zips, died, hmo_indicators,
    hmo_cvg_count, buyin_indicators, buyin_cvg_count, source_files, record_numbers, state_count, fips3_valdiated)
SELECT g.bene_id, g.year, g.state, g.age, g.age_min, g.orec, g.curec, g.state_iso, g.fips2, g.fips3,
       g.fips3_is_approximated, g.ssa2, g.ssa3,
       CASE WHEN g.records = 1 THEN g.ssa2 ELSE
           (SELECT string_agg(DISTINCT v, ',' ORDER BY v) FROM unnest(g.all_ssa2) v) END,
       CASE WHEN g.records = 1 THEN g.ssa3 ELSE
           (SELECT string_agg(DISTINCT v, ',' ORDER BY v) FROM unnest(g.all_ssa3) v) END,
       g.fips3,
       CASE WHEN g.records = 1 THEN g.fips3_list ELSE
           (SELECT string_agg(DISTINCT v, ',' ORDER BY v) FROM unnest(g.all_fips3_list) v) END,
       g.fips2 || g.fips3,
       g.zip,
       CASE WHEN g.records = 1 THEN g.zip::text ELSE
           (SELECT string_agg(DISTINCT v, ',' ORDER BY v) FROM unnest(g.all_zip) v) END,
       g.died, g.hmo_indicators, g.hmo_cvg_count, g.buyin_indicators, g.buyin_cvg_count,
       CASE WHEN g.records = 1 THEN g.source_file ELSE
           (SELECT string_agg(DISTINCT v, ',' ORDER BY v) FROM unnest(g.all_source_file) v) END,
       CASE WHEN g.records = 1 THEN ARRAY[g.record_number] ELSE
           (SELECT array_agg(r ORDER BY f, r) FROM unnest(g.all_source_file, g.all_record_number) AS u(f, r)) END,
       g.state_count,
       EXISTS (SELECT FROM {medicare}.zip_county z WHERE z.zip = g.zip AND z.fips2 = g.fips2 AND z.fips3 = g.fips3)
  FROM (
    SELECT bene_id, year, state,
           count(*) AS records,
           max(age) FILTER (WHERE age BETWEEN 0 AND 120) AS age,
           CASE WHEN min(age) FILTER (WHERE age BETWEEN 0 AND 120) <> max(age) FILTER (WHERE age BETWEEN 0 AND 120)
                THEN min(age) FILTER (WHERE age BETWEEN 0 AND 120) END AS age_min,
           max(orec) AS orec,
           max(curec) AS curec,
           'US-' || state AS state_iso,
           max(fips2) AS fips2,
           max(fips3) AS fips3,
           bool_and(fips3_is_approximated) AS fips3_is_approximated,
           max(ssa2) AS ssa2,
           max(ssa3) AS ssa3,
           max(fips3_list) AS fips3_list,
           max(zip) AS zip,
           coalesce(extract(year FROM max(dod)) = year, false) AS died,
           max(hmo_indicators) AS hmo_indicators,
           max(hmo_cvg_count) AS hmo_cvg_count,
           max(buyin_indicators) AS buyin_indicators,
           max(buyin_cvg_count) AS buyin_cvg_count,
           max(source_file) AS source_file,
           max(record_number) AS record_number,
           -- every value, in the same (arbitrary) record order, for the lists of several records
           array_agg(ssa2) AS all_ssa2,
           array_agg(ssa3) AS all_ssa3,
           array_agg(fips3_list) AS all_fips3_list,
           array_agg(zip::text) AS all_zip,
           array_agg(source_file) AS all_source_file,
           array_agg(record_number) AS all_record_number,
           count(*) OVER (PARTITION BY bene_id, year)::integer AS state_count
      FROM {medicare}._ps
     WHERE bene_id IS NOT NULL AND year IS NOT NULL AND state IS NOT NULL AND copy_number = 1
     GROUP BY bene_id, year, state
  ) g;
ALTER TABLE {medicare}.enrollments
    ADD PRIMARY KEY (bene_id, year, state),
    ADD FOREIGN KEY (bene_id) REFERENCES {medicare}.beneficiaries (bene_id);
CREATE INDEX sy_idx ON {medicare}.enrollments (state, year);
CREATE INDEX sy_iso_idx ON {medicare}.enrollments (state_iso, year);
CREATE INDEX fips_idx ON {medicare}.enrollments (fips2, fips3);
CREATE INDEX zc_idx ON {medicare}.enrollments (zip, fips5);
CREATE INDEX scz_idx ON {medicare}.enrollments (state, fips3, zip);
ANALYZE {medicare}.enrollments;
