-- Row counts of the published model: (kind, year, key, value) rows, summarised in Python.
SELECT 'total', NULL::integer, 'beneficiaries', count(*) FROM {medicare}.beneficiaries
UNION ALL
SELECT 'total', NULL, 'ambiguous_dob', count(*) FROM {medicare}.beneficiaries WHERE dob_latest IS NOT NULL
UNION ALL
SELECT 'total', NULL, 'ambiguous_sex', count(*) FROM {medicare}.beneficiaries WHERE sex LIKE '%,%'
UNION ALL
SELECT 'year', year, 'ps_records', count(*) FROM {medicare}._ps GROUP BY year
UNION ALL
SELECT 'year', year, 'enrollments', count(*) FROM {medicare}.enrollments GROUP BY year
UNION ALL
SELECT 'year', year, 'died', count(*) FILTER (WHERE died) FROM {medicare}.enrollments GROUP BY year
UNION ALL
SELECT 'year', year, 'two_state_beneficiaries', count(DISTINCT bene_id) FILTER (WHERE state_count > 1)
  FROM {medicare}.enrollments GROUP BY year
UNION ALL
SELECT 'year', year, 'enrollment_audit_' || lower(replace(reason, ' ', '_')), count(*)
  FROM {audit}.enrollments GROUP BY year, reason
UNION ALL
SELECT 'year', year, 'admissions_valid', count(*) FROM {medicare}.admissions GROUP BY year
UNION ALL
SELECT 'year', year, 'admissions_' || lower(replace(reason, ' ', '_')), count(*)
  FROM {audit}.admissions GROUP BY year, reason
ORDER BY 1, 2, 3;
