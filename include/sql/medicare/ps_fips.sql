-- medicare._ps: medicare.ps with the county FIPS code (fips3), taken from the SSA county code through
-- the SSA->FIPS crosswalk, or, when the record has no valid county code, from its ZIP through the
-- ZIP->county crosswalk (then fips3_is_approximated is true). Stored as a table: every later step
-- reads it, and the union view's conditioning is paid once.
-- copy_number numbers exact repeats of one record (same conditioned values, any file/record): the
-- first copy is 1; later copies go to the audit as DUPLICATE.
CREATE TABLE {medicare}._ps AS
SELECT p.*,
       coalesce(sf.fips3, zf.fips3) AS fips3,
       (sf.fips3 IS NULL) AS fips3_is_approximated,
       coalesce(sf.fips3, zf.fips3_list) AS fips3_list,
       CASE WHEN p.age BETWEEN 0 AND 120 THEN p.year - p.age END AS yob,
       row_number() OVER (
           PARTITION BY p.bene_id, p.year, p.ssa2, p.ssa3, p.zip, p.zip4, p.dob, p.dod, p.dod_ndi, p.age, p.sex,
                        p.race, p.race_rti, p.hmo_indicators, p.hmo_cvg_count, p.buyin_indicators,
                        p.buyin_cvg_count, p.orec, p.curec
           ORDER BY p.source_table, p.source_file, p.record_number) AS copy_number
  FROM {medicare}.ps p
  LEFT JOIN {medicare}.ssa_fips sf ON sf.ssa2 = p.ssa2 AND sf.ssa3 = p.ssa3
  LEFT JOIN {medicare}.zip_fips zf ON zf.zip = p.zip AND sf.fips3 IS NULL;
CREATE INDEX ON {medicare}._ps (bene_id, year, state);
ANALYZE {medicare}._ps;

-- Records that fail validation, one row per finding (a record can have several). PRIMARY KEY and
-- DUPLICATE records are left out of beneficiaries (PRIMARY KEY: only when bene_id is missing) and
-- enrollments; an AGE finding keeps the record but not its age.
CREATE TABLE {audit}.enrollments AS
SELECT source_table, source_file, record_number, bene_id, year, ssa2, state, age, reason, detail
  FROM (
    SELECT p.*, 'PRIMARY KEY'::text AS reason,
           concat_ws(', ', CASE WHEN bene_id IS NULL THEN 'no bene_id' END,
                           CASE WHEN year IS NULL THEN 'no year' END,
                           CASE WHEN state IS NULL THEN 'unknown state code ' || coalesce(quote_literal(ssa2), 'NULL') END) AS detail
      FROM {medicare}._ps p WHERE bene_id IS NULL OR year IS NULL OR state IS NULL
    UNION ALL
    SELECT p.*, 'DUPLICATE', 'copy ' || copy_number || ' of an earlier record'
      FROM {medicare}._ps p WHERE copy_number > 1
    UNION ALL
    SELECT p.*, 'AGE OUT OF RANGE', 'age ' || age || ' is not within 0-120: not used'
      FROM {medicare}._ps p WHERE age NOT BETWEEN 0 AND 120
  ) findings;
