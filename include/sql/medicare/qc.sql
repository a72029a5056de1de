-- QC: the seed's aggregate tables (materialized views, as Superset reads them) and the percent
-- metrics as views. `numdistinctbeneficaries` (sic) keeps the name the dashboards use.
CREATE MATERIALIZED VIEW {qc}.qc_enrollments AS
SELECT e.year, e.state, e.zip, e.fips3,
       CASE WHEN b.dob IS NULL THEN 'MISSING' WHEN b.dob_latest IS NOT NULL THEN 'AMBIGUOUS'
            ELSE 'CONSISTENT' END AS consistent_dob,
       CASE WHEN b.dod IS NULL THEN 'NONE' WHEN b.dod_earliest IS NOT NULL THEN 'AMBIGUOUS'
            ELSE 'CONSISTENT' END AS consistent_dod,
       CASE WHEN b.sex LIKE '%,%' THEN 'AMBIGUOUS' ELSE 'CONSISTENT' END AS consistent_sex,
       CASE WHEN b.race LIKE '%,%' THEN 'AMBIGUOUS' ELSE 'CONSISTENT' END AS consistent_race,
       e.fips3_is_approximated,
       e.fips3_valdiated,
       max(e.state_iso) AS state_iso,
       count(*) AS numrecords,
       (# hll_add_agg(e.bene))::bigint AS numdistinctbeneficaries,
       hll_add_agg(e.bene) AS bene_hll
  FROM {medicare}.enrollments e
  JOIN {medicare}.beneficiaries b USING (bene_id)
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
CREATE INDEX ON {qc}.qc_enrollments (year, state);

CREATE MATERIALIZED VIEW {qc}.qc_admissions AS
SELECT year, state, zip, reason,
       max(state_iso) AS state_iso,
       count(*) AS numrecords,
       (# hll_add_agg(bene))::bigint AS numdistinctbeneficaries,
       hll_add_agg(bene) AS bene_hll
  FROM (SELECT year, state, zip, 'OK'::text AS reason, state_iso, bene FROM {medicare}.admissions
        UNION ALL
        SELECT year, state, zip, reason, state_iso, bene FROM {audit}.admissions) u
 GROUP BY year, state, zip, reason;
CREATE INDEX ON {qc}.qc_admissions (year, state);

-- The seed's Superset metrics, per year and state.
CREATE VIEW {qc}.qc_enrollments_metrics AS
SELECT year, state,
       grouping(year, state) AS rollup_level,  -- 0: a year and state, 1: a year, 3: all
       sum(numrecords) AS numrecords,
       (# hll_union_agg(bene_hll))::bigint AS numdistinctbeneficaries,
       round(((# hll_union_agg(bene_hll) FILTER (WHERE consistent_dob = 'CONSISTENT' AND consistent_dod <> 'AMBIGUOUS'
                                               AND consistent_race = 'CONSISTENT' AND consistent_sex = 'CONSISTENT'))
              * 100.0 / nullif(# hll_union_agg(bene_hll), 0))::numeric, 2) AS pct_consistent_beneficiaries,
       round(sum(numrecords) FILTER (WHERE fips3_is_approximated) * 100.0 / sum(numrecords), 2) AS pct_fips3_approximated,
       round(sum(numrecords) FILTER (WHERE fips3_valdiated) * 100.0 / sum(numrecords), 2) AS pct_fips3_validated
  FROM {qc}.qc_enrollments
 GROUP BY ROLLUP (year, state);

CREATE VIEW {qc}.qc_admissions_metrics AS
SELECT year, state,
       grouping(year, state) AS rollup_level,
       sum(numrecords) AS numrecords,
       (# hll_union_agg(bene_hll))::bigint AS numdistinctbeneficaries,
       round(coalesce(sum(numrecords) FILTER (WHERE reason = 'OK'), 0) * 100.0 / sum(numrecords), 2) AS pct_valid,
       round(coalesce(sum(numrecords) FILTER (WHERE reason = 'FOREIGN KEY'), 0) * 100.0 / sum(numrecords), 2) AS pct_foreign_key,
       round(coalesce(sum(numrecords) FILTER (WHERE reason = 'DUPLICATE'), 0) * 100.0 / sum(numrecords), 2) AS pct_duplicate,
       round(coalesce(sum(numrecords) FILTER (WHERE reason = 'PRIMARY KEY'), 0) * 100.0 / sum(numrecords), 2) AS pct_missing_data
  FROM {qc}.qc_admissions
 GROUP BY ROLLUP (year, state);

-- Enrollment records that failed validation, per year and reason.
CREATE VIEW {qc}.qc_enrollment_audit AS
SELECT year, reason, count(*) AS numrecords
  FROM {audit}.enrollments
 GROUP BY year, reason;
