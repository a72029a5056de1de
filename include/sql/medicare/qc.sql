-- QC: the seed's aggregate tables (materialized views, as Superset reads them) and the percent
-- metrics as views. `numdistinctbeneficaries` (sic) keeps the name the dashboards use.

-- The four consistency flags go through the grouping sort as one small integer (dob * 27 + dod * 9
-- + sex * 3 + race) and are spelled out afterwards, and the most varied key (zip) leads: sorting every
-- enrollment on four text flags was most of this step (benchmarks/bench_medicare_processing.py).
CREATE MATERIALIZED VIEW {qc}.qc_enrollments AS
SELECT year, state, zip, fips3,
       CASE consistency / 27 WHEN 2 THEN 'MISSING' WHEN 1 THEN 'AMBIGUOUS' ELSE 'CONSISTENT' END AS consistent_dob,
       CASE consistency / 9 % 3 WHEN 2 THEN 'NONE' WHEN 1 THEN 'AMBIGUOUS' ELSE 'CONSISTENT' END AS consistent_dod,
       CASE consistency / 3 % 3 WHEN 1 THEN 'AMBIGUOUS' ELSE 'CONSISTENT' END AS consistent_sex,
       CASE consistency % 3 WHEN 1 THEN 'AMBIGUOUS' ELSE 'CONSISTENT' END AS consistent_race,
       fips3_is_approximated,
       fips3_valdiated,
       state_iso,
       numrecords,
       numdistinctbeneficaries,
       bene_hll
  FROM (
    SELECT e.zip, e.fips3, e.state, e.year,
           (CASE WHEN b.dob IS NULL THEN 2 WHEN b.dob_latest IS NOT NULL THEN 1 ELSE 0 END * 27
            + CASE WHEN b.dod IS NULL THEN 2 WHEN b.dod_earliest IS NOT NULL THEN 1 ELSE 0 END * 9
            + CASE WHEN b.sex LIKE '%,%' THEN 3 ELSE 0 END
            + CASE WHEN b.race LIKE '%,%' THEN 1 ELSE 0 END)::smallint AS consistency,
           e.fips3_is_approximated,
           e.fips3_valdiated,
           max(e.state_iso) AS state_iso,
           count(*) AS numrecords,
           (# hll_add_agg(e.bene))::bigint AS numdistinctbeneficaries,
           hll_add_agg(e.bene) AS bene_hll
      FROM {medicare}.enrollments e
      JOIN {medicare}.beneficiaries b USING (bene_id)
     GROUP BY 1, 2, 3, 4, 5, 6, 7
  ) g;
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
