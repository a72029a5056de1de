-- The year's NPIs with what the checks and the enrichment need: the check digit (computed in Python),
-- the NPPES facts of the newest bundle that has the NPI (loaded by COPY; dates parsed in Python), the NUCC
-- grouping / classification / specialization of its primary taxonomy and its role for the referral
-- rules, its Medicaid spending totals.
CREATE TABLE {schema}.{npis} AS
SELECT {year}::integer AS year, l.npi, l.luhn_valid,
       f.npi IS NOT NULL AS in_nppes,
       nullif(f.entity_type, '') AS entity_type,
       nullif(f.name, '') AS name,
       nullif(f.credential, '') AS credential,
       nullif(f.state, '') AS state,
       nullif(f.zip, '') AS zip,
       nullif(f.taxonomy, '') AS taxonomy,
       t.grouping, t.classification, nullif(t.specialization, '') AS specialization,
       -- the referral rules' role: per NUCC code (~900), not per NPI (~2M); no or an unknown taxonomy
       -- gets the role of empty names
       coalesce(t.role_index, (SELECT {role} FROM (SELECT NULL::text AS grouping, NULL::text AS classification,
                                                          NULL::text AS specialization) t)) AS role_index,
       f.enumeration_date, f.deactivation_date, f.reactivation_date,
       false AS inactive_in_year,
       sb.claims AS billing_claims, sb.beneficiaries AS billing_beneficiaries, sb.paid AS billing_paid,
       ss.claims AS servicing_claims, ss.beneficiaries AS servicing_beneficiaries, ss.paid AS servicing_paid
  FROM {schema}.{npi_list} l
  LEFT JOIN {schema}.{facts} f ON f.npi = l.npi
  LEFT JOIN (SELECT t.*, {role} AS role_index FROM hop.nucc_taxonomy t) t ON t.code = nullif(f.taxonomy, '')
  LEFT JOIN hop.npi_spending sb ON sb.npi = l.npi::text AND sb.role = 'billing'
  LEFT JOIN hop.npi_spending ss ON ss.npi = l.npi::text AND ss.role = 'servicing';
ALTER TABLE {schema}.{npis} ADD PRIMARY KEY (year, npi);
-- Deactivated before the year and not reactivated since: not a provider that year.
UPDATE {schema}.{npis}
   SET inactive_in_year = true
 WHERE deactivation_date < make_date({year}, 1, 1)
   AND (reactivation_date IS NULL OR reactivation_date < deactivation_date);
ANALYZE {schema}.{npis};
