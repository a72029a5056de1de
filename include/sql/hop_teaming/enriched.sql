-- The year's scored edges: each clean edge with its reverse edge's counts (direction asymmetry) and the
-- referral likelihood from the rules file (include/hop_teaming/referral_rules.yaml, compiled into
-- {referral}), which reads both ends' NPPES / NUCC facts. Stored compact: the facts stay in the year's
-- NPI table and the view hop.edges_enriched joins them back (a year has ~200M edges but ~2M NPIs, so
-- repeating the facts on every edge would multiply the size of the year several times).
CREATE TABLE {schema}.{scored} AS
SELECT {year}::integer AS year, e.from_npi, e.to_npi, e.patient_count, e.transaction_count, e.average_day_wait,
       e.std_day_wait, e.line_number, e.reverse_patient_count, e.reverse_transaction_count, {referral}
  FROM (
    SELECT c.from_npi, c.to_npi, c.patient_count, c.transaction_count, c.average_day_wait, c.std_day_wait,
           c.line_number,
           f.role_index AS from_role_index, t.role_index AS to_role_index,
           f.entity_type AS from_entity_type, f.taxonomy AS from_taxonomy, f.grouping AS from_grouping,
           f.classification AS from_classification, f.specialization AS from_specialization,
           t.entity_type AS to_entity_type, t.taxonomy AS to_taxonomy, t.grouping AS to_grouping,
           t.classification AS to_classification, t.specialization AS to_specialization,
           rv.patient_count AS reverse_patient_count, rv.transaction_count AS reverse_transaction_count
      FROM {schema}.{edges} c
      JOIN {schema}.{npis} f ON f.npi = c.from_npi
      JOIN {schema}.{npis} t ON t.npi = c.to_npi
      LEFT JOIN {schema}.{edges} rv ON rv.from_npi = c.to_npi AND rv.to_npi = c.from_npi
  ) e;
ALTER TABLE {schema}.{scored} ADD PRIMARY KEY (year, from_npi, to_npi);
CREATE INDEX ON {schema}.{scored} (year, to_npi);

-- Per NPI: degrees, patients, likely referrals (score >= {likely}) in and out.
CREATE TABLE {schema}.{summary} AS
SELECT {year}::integer AS year, n.npi, n.entity_type, n.name, n.state, n.taxonomy, n.classification,
       coalesce(o.out_degree, 0) AS out_degree, coalesce(i.in_degree, 0) AS in_degree,
       coalesce(o.patients_out, 0) AS patients_out, coalesce(i.patients_in, 0) AS patients_in,
       coalesce(o.likely_referrals_out, 0) AS likely_referrals_out,
       coalesce(i.likely_referrals_in, 0) AS likely_referrals_in,
       n.billing_claims, n.billing_beneficiaries, n.billing_paid
  FROM {schema}.{npis} n
  LEFT JOIN (SELECT from_npi AS npi, count(*) AS out_degree, sum(patient_count) AS patients_out,
                    count(*) FILTER (WHERE referral_score >= {likely}) AS likely_referrals_out
               FROM {schema}.{scored} GROUP BY from_npi) o USING (npi)
  LEFT JOIN (SELECT to_npi AS npi, count(*) AS in_degree, sum(patient_count) AS patients_in,
                    count(*) FILTER (WHERE referral_score >= {likely}) AS likely_referrals_in
               FROM {schema}.{scored} GROUP BY to_npi) i USING (npi)
 WHERE o.npi IS NOT NULL OR i.npi IS NOT NULL;
ALTER TABLE {schema}.{summary} ADD PRIMARY KEY (year, npi);
