-- Every loaded row of the year checked, paired with its reverse edge and scored, in one sorted pass.
-- The rows are written once, by CREATE TABLE AS (its SELECT runs in parallel, an INSERT's does not);
-- the few rows with findings then move to {flagged} (turned into the audit by audit.sql) and {scored}
-- keeps the clean edges (published as the year's partition of hop.edges). Checks:
--   MISSING VALUE                an empty field (COPY reads it as NULL)
--   CRUFT NPI                    9999999999 as either end (the classic placeholder)
--   INVALID NPI                  an NPI failing the check digit (other than the cruft one)
--   NPI NOT IN NPPES             a well-formed NPI no NPPES file has
--   NPI DEACTIVATED              deactivated before the year and not reactivated
--   SELF LOOP                    from_npi = to_npi
--   PRIVACY THRESHOLD            patient_count < 11 (never released by CareSet)
--   TRANSACTIONS BELOW PATIENTS  transaction_count < patient_count
--   NEGATIVE VALUE               a negative count or wait
--   DUPLICATE EDGE               the same (from, to) again later in the file (the first is kept)
-- One sort by (least NPI, greatest NPI, from, to, line) serves both windows: within (from, to) it
-- finds the duplicates, within the unordered pair it finds the reverse edge among the clean rows (the
-- clean rows of a pair are at most A->B and B->A). The referral score (compiled from
-- include/hop_teaming/referral_rules.yaml by referral.score_sql) reads each end's role, computed once per NPI in npis.sql.
CREATE TABLE {schema}.{scored} AS
SELECT {year}::integer AS year, e.from_npi, e.to_npi, e.patient_count, e.transaction_count, e.average_day_wait,
       e.std_day_wait, e.line_number, e.reverse_patient_count, e.reverse_transaction_count, {referral},
       CASE WHEN NOT e.clean THEN e.reasons END AS reasons
  FROM (
    SELECT c.*,
           CASE WHEN c.clean AND count(*) FILTER (WHERE c.clean) OVER pair = 2
                THEN (sum(c.patient_count) FILTER (WHERE c.clean) OVER pair - c.patient_count)::bigint END
               AS reverse_patient_count,
           CASE WHEN c.clean AND count(*) FILTER (WHERE c.clean) OVER pair = 2
                THEN (sum(c.transaction_count) FILTER (WHERE c.clean) OVER pair - c.transaction_count)::bigint END
               AS reverse_transaction_count
      FROM (
        SELECT f.*, cardinality(f.reasons) = 0 AS clean
          FROM (
            SELECT r.line_number, r.from_npi, r.to_npi, r.patient_count, r.transaction_count,
                   r.average_day_wait, r.std_day_wait, least(r.from_npi, r.to_npi) AS low_npi,
                   greatest(r.from_npi, r.to_npi) AS high_npi,
                   fn.role_index AS from_role_index, tn.role_index AS to_role_index,
                   array_remove(ARRAY[
                       CASE WHEN r.from_npi IS NULL OR r.to_npi IS NULL OR r.patient_count IS NULL
                                 OR r.transaction_count IS NULL OR r.average_day_wait IS NULL
                                 OR r.std_day_wait IS NULL THEN 'MISSING VALUE' END,
                       CASE WHEN r.from_npi = 9999999999 OR r.to_npi = 9999999999 THEN 'CRUFT NPI' END,
                       CASE WHEN (NOT fn.luhn_valid AND r.from_npi <> 9999999999)
                                 OR (NOT tn.luhn_valid AND r.to_npi <> 9999999999) THEN 'INVALID NPI' END,
                       CASE WHEN (fn.luhn_valid AND NOT fn.in_nppes) OR (tn.luhn_valid AND NOT tn.in_nppes)
                            THEN 'NPI NOT IN NPPES' END,
                       CASE WHEN fn.inactive_in_year OR tn.inactive_in_year THEN 'NPI DEACTIVATED' END,
                       CASE WHEN r.from_npi = r.to_npi THEN 'SELF LOOP' END,
                       CASE WHEN r.patient_count < 11 THEN 'PRIVACY THRESHOLD' END,
                       CASE WHEN r.transaction_count < r.patient_count THEN 'TRANSACTIONS BELOW PATIENTS' END,
                       CASE WHEN least(r.patient_count, r.transaction_count, r.average_day_wait, r.std_day_wait) < 0
                            THEN 'NEGATIVE VALUE' END,
                       CASE WHEN row_number() OVER edge > 1 THEN 'DUPLICATE EDGE' END
                   ], NULL) AS reasons
              FROM {schema}.{raw} r
              LEFT JOIN {schema}.{npis} fn ON fn.npi = r.from_npi
              LEFT JOIN {schema}.{npis} tn ON tn.npi = r.to_npi
            WINDOW edge AS (PARTITION BY least(r.from_npi, r.to_npi), greatest(r.from_npi, r.to_npi),
                                         r.from_npi, r.to_npi ORDER BY r.line_number)
          ) f
      ) c
    WINDOW pair AS (PARTITION BY c.low_npi, c.high_npi)
  ) e;

CREATE UNLOGGED TABLE {schema}.{flagged} AS SELECT * FROM {schema}.{scored} WHERE reasons IS NOT NULL;
DELETE FROM {schema}.{scored} WHERE reasons IS NOT NULL;
-- The year's CHECK lets ATTACH PARTITION (publish) skip scanning the table to prove it; the primary key
-- makes both NPIs NOT NULL. A dropped column costs nothing: no rewrite.
ALTER TABLE {schema}.{scored} DROP COLUMN reasons,
    ADD CONSTRAINT {scored_year} CHECK (year = {year}),
    ADD PRIMARY KEY (year, from_npi, to_npi);
CREATE INDEX ON {schema}.{scored} (year, to_npi);
-- Statistics now (a sample: about a second at 150M rows): the per-NPI summary is planned from them,
-- and so is every query on the published partition until autovacuum would get to it.
ANALYZE {schema}.{scored};
