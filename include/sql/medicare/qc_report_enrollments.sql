-- Enrollment QC per year, per state and in total, in one scan of the matview. GROUPING(year, state)
-- tells the three apart (1 = per year, 2 = per state, 3 = total) and keeps a group whose key is NULL
-- (records that failed validation) distinct from a total. Distinct beneficiaries are HyperLogLog
-- estimates: unions of the per-group sketches, never sums of per-group counts.
SELECT GROUPING(year, state) AS level,
       year,
       state,
       max(state_iso) AS state_iso,
       coalesce(sum(numrecords), 0)::bigint AS records,
       coalesce(#hll_union_agg(bene_hll), 0)::bigint AS beneficiaries,
       (coalesce(#(hll_union_agg(bene_hll) FILTER (WHERE consistent_dob = 'CONSISTENT'
                                                     AND consistent_dod <> 'AMBIGUOUS'
                                                     AND consistent_race = 'CONSISTENT'
                                                     AND consistent_sex = 'CONSISTENT')), 0)
        * 100.0 / nullif(#hll_union_agg(bene_hll), 0))::float8 AS consistent_pct,
       coalesce(sum(numrecords) FILTER (WHERE fips3_is_approximated), 0)::bigint AS fips3_approximated,
       coalesce(sum(numrecords) FILTER (WHERE fips3_valdiated), 0)::bigint AS fips3_validated
  FROM {schema}.qc_enrollments
 GROUP BY GROUPING SETS ((year), (state), ())
 ORDER BY level, year NULLS LAST, state NULLS LAST
