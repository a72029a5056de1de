-- Per NPI of the year: degrees, patients, likely referrals (score >= {likely}) out and in, from one
-- scan of each direction into one aggregate (an NPI's out- and in-edges meet in the same group).
CREATE TABLE {schema}.{summary} AS
SELECT {year}::integer AS year, n.npi, n.entity_type, n.name, n.state, n.taxonomy, n.classification,
       d.out_degree, d.in_degree, d.patients_out, d.patients_in, d.likely_referrals_out, d.likely_referrals_in,
       n.billing_claims, n.billing_beneficiaries, n.billing_paid
  FROM (SELECT npi,
               count(*) FILTER (WHERE outgoing) AS out_degree,
               count(*) FILTER (WHERE NOT outgoing) AS in_degree,
               coalesce(sum(patient_count) FILTER (WHERE outgoing), 0) AS patients_out,
               coalesce(sum(patient_count) FILTER (WHERE NOT outgoing), 0) AS patients_in,
               count(*) FILTER (WHERE outgoing AND likely) AS likely_referrals_out,
               count(*) FILTER (WHERE NOT outgoing AND likely) AS likely_referrals_in
          FROM (SELECT from_npi AS npi, true AS outgoing, patient_count, referral_score >= {likely} AS likely
                  FROM {schema}.{scored}
                UNION ALL
                SELECT to_npi, false, patient_count, referral_score >= {likely} FROM {schema}.{scored}) x
         GROUP BY npi) d
  JOIN {schema}.{npis} n ON n.npi = d.npi;
ALTER TABLE {schema}.{summary} ADD PRIMARY KEY (year, npi);
