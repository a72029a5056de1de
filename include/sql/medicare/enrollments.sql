-- medicare.enrollments: one row per beneficiary, year and state (the primary key). Where the records
-- of one enrollment disagree, an arbitrary but deterministic value (the largest) is kept and the
-- *_list / residence_counties / zips columns list every value seen. fips3_valdiated (sic, the seed's
-- name) says the ZIP lies in the county according to the ZIP->county crosswalk.
CREATE TABLE {medicare}.enrollments AS
WITH g AS (
    SELECT bene_id, year, state,
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
           string_agg(DISTINCT ssa2, ',' ORDER BY ssa2) AS ssa2_list,
           string_agg(DISTINCT ssa3, ',' ORDER BY ssa3) AS ssa3_list,
           max(fips3) AS residence_county,
           string_agg(DISTINCT fips3_list, ',' ORDER BY fips3_list) AS residence_counties,
           max(fips2) || max(fips3) AS fips5,
           max(zip) AS zip,
           string_agg(DISTINCT zip::text, ',' ORDER BY zip::text) AS zips,
           coalesce(extract(year FROM max(dod)) = year, false) AS died,
           max(hmo_indicators) AS hmo_indicators,
           max(hmo_cvg_count) AS hmo_cvg_count,
           max(buyin_indicators) AS buyin_indicators,
           max(buyin_cvg_count) AS buyin_cvg_count,
           string_agg(DISTINCT source_file, ',' ORDER BY source_file) AS source_files,
           array_agg(record_number ORDER BY source_file, record_number) AS record_numbers
      FROM {medicare}._ps
     WHERE bene_id IS NOT NULL AND year IS NOT NULL AND state IS NOT NULL AND copy_number = 1
     GROUP BY bene_id, year, state
)
SELECT g.*,
       count(*) OVER (PARTITION BY g.bene_id, g.year)::integer AS state_count,
       EXISTS (SELECT FROM {medicare}.zip_county z
                WHERE z.zip = g.zip AND z.fips2 = g.fips2 AND z.fips3 = g.fips3) AS fips3_valdiated
  FROM g;
ALTER TABLE {medicare}.enrollments
    ADD COLUMN hmo boolean GENERATED ALWAYS AS (hmo_cvg_count > 0) STORED,
    ADD COLUMN buyin boolean GENERATED ALWAYS AS (buyin_cvg_count > 0) STORED,
    ADD COLUMN bene hll_hashval GENERATED ALWAYS AS (hll_hash_text(bene_id)) STORED,
    ADD PRIMARY KEY (bene_id, year, state),
    ADD FOREIGN KEY (bene_id) REFERENCES {medicare}.beneficiaries (bene_id);
CREATE INDEX sy_idx ON {medicare}.enrollments (state, year);
CREATE INDEX sy_iso_idx ON {medicare}.enrollments (state_iso, year);
CREATE INDEX fips_idx ON {medicare}.enrollments (fips2, fips3);
CREATE INDEX zc_idx ON {medicare}.enrollments (zip, fips5);
CREATE INDEX scz_idx ON {medicare}.enrollments (state, fips3, zip);
ANALYZE {medicare}.enrollments;
