-- hop.edges_enriched: every clean edge with both ends' NPPES facts, NUCC names and Medicaid totals,
-- the source file and line, and the referral likelihood. A view over the compact year partitions.
CREATE OR REPLACE VIEW hop.edges_enriched AS
SELECT e.year, e.from_npi, e.to_npi, e.patient_count, e.transaction_count, e.average_day_wait, e.std_day_wait,
       l.source_file, e.line_number,
       f.entity_type AS from_entity_type, f.name AS from_name, f.state AS from_state, f.zip AS from_zip,
       f.taxonomy AS from_taxonomy, f.grouping AS from_grouping, f.classification AS from_classification,
       f.specialization AS from_specialization,
       t.entity_type AS to_entity_type, t.name AS to_name, t.state AS to_state, t.zip AS to_zip,
       t.taxonomy AS to_taxonomy, t.grouping AS to_grouping, t.classification AS to_classification,
       t.specialization AS to_specialization,
       f.billing_claims AS from_billing_claims, f.billing_beneficiaries AS from_billing_beneficiaries,
       f.billing_paid AS from_billing_paid,
       t.billing_claims AS to_billing_claims, t.billing_beneficiaries AS to_billing_beneficiaries,
       t.billing_paid AS to_billing_paid,
       e.reverse_patient_count, e.reverse_transaction_count,
       e.from_role, e.to_role, e.referral_score, e.referral_rule
  FROM hop.edges e
  JOIN hop.npis f ON f.year = e.year AND f.npi = e.from_npi
  JOIN hop.npis t ON t.year = e.year AND t.npi = e.to_npi
  JOIN hop.loads l ON l.year = e.year;
