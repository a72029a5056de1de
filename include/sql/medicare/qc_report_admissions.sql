-- Admission QC per year, per state and in total, in one scan of the matview (GROUPING as in
-- qc_report_enrollments.sql: 1 = per year, 2 = per state, 3 = total). Records are counted per
-- reason; any reason outside the four known ones is left to the caller as records minus the rest.
SELECT GROUPING(year, state) AS level,
       year,
       state,
       max(state_iso) AS state_iso,
       coalesce(sum(numrecords), 0)::bigint AS records,
       coalesce(#hll_union_agg(bene_hll), 0)::bigint AS beneficiaries,
       coalesce(sum(numrecords) FILTER (WHERE reason = 'OK'), 0)::bigint AS ok,
       coalesce(sum(numrecords) FILTER (WHERE reason = 'FOREIGN KEY'), 0)::bigint AS foreign_key,
       coalesce(sum(numrecords) FILTER (WHERE reason = 'DUPLICATE'), 0)::bigint AS duplicate,
       coalesce(sum(numrecords) FILTER (WHERE reason = 'PRIMARY KEY'), 0)::bigint AS primary_key
  FROM {schema}.qc_admissions
 GROUP BY GROUPING SETS ((year), (state), ())
 ORDER BY level, year NULLS LAST, state NULLS LAST
