-- medicare.beneficiaries: one row per beneficiary over all years, with the seed's discrepancy rules:
-- the earliest dob, the latest dod, comma lists of every race / RTI race / sex seen; `duplicates`
-- (sic, the seed's name) counts the distinct (dob, race, sex) combinations plus any extra dod:
-- 1 means consistent, more means the records disagree; dob_latest / dod_earliest are set only then.
CREATE TABLE {medicare}.beneficiaries AS
SELECT bene_id,
       min(dob) AS dob,
       min(yob) AS yob,
       max(dod) AS dod,
       min(year) AS first_enrollment_year,
       max(year) AS last_enrollment_year,
       array_agg(DISTINCT year ORDER BY year) AS all_enrollment_years,
       string_agg(DISTINCT race, ',' ORDER BY race) AS race,
       string_agg(DISTINCT race_rti, ',' ORDER BY race_rti) AS race_rti,
       string_agg(DISTINCT sex, ',' ORDER BY sex) AS sex,
       max(orec) AS orec,
       (count(DISTINCT (dob, race, sex))
        + greatest(count(DISTINCT dod) - 1, 0))::integer AS duplicates,
       CASE WHEN max(dob) <> min(dob) THEN max(dob) END AS dob_latest,
       CASE WHEN max(yob) <> min(yob) THEN max(yob) END AS yob_latest,
       CASE WHEN min(dod) <> max(dod) THEN min(dod) END AS dod_earliest
  FROM {medicare}._ps
 WHERE bene_id IS NOT NULL AND copy_number = 1
 GROUP BY bene_id;
ALTER TABLE {medicare}.beneficiaries
    ADD COLUMN number_of_gap_years integer
        GENERATED ALWAYS AS (last_enrollment_year - first_enrollment_year + 1 - cardinality(all_enrollment_years)) STORED,
    ADD COLUMN bene hll_hashval GENERATED ALWAYS AS (hll_hash_text(bene_id)) STORED,
    ADD PRIMARY KEY (bene_id);
CREATE INDEX bene_rsd_idx ON {medicare}.beneficiaries (race, sex, duplicates);
ANALYZE {medicare}.beneficiaries;
