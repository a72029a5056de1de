-- Every loaded row of the year checked. A row with any finding goes to the audit with all its reasons
-- (the first is `reason`); the others are the clean edges. Checks:
--   CRUFT NPI                    9999999999 as either end (the classic placeholder)
--   INVALID NPI                  an NPI failing the check digit (other than the cruft one)
--   NPI NOT IN NPPES             a well-formed NPI no NPPES file has
--   NPI DEACTIVATED              deactivated before the year and not reactivated
--   SELF LOOP                    from_npi = to_npi
--   PRIVACY THRESHOLD            patient_count < 11 (never released by CareSet)
--   TRANSACTIONS BELOW PATIENTS  transaction_count < patient_count
--   NEGATIVE VALUE               a negative count or wait
--   DUPLICATE EDGE               the same (from, to) again later in the file (the first is kept)
CREATE TEMPORARY TABLE flagged ON COMMIT DROP AS
SELECT r.*,
       array_remove(ARRAY[
           CASE WHEN r.from_npi = 9999999999 OR r.to_npi = 9999999999 THEN 'CRUFT NPI' END,
           CASE WHEN (NOT f.luhn_valid AND r.from_npi <> 9999999999) OR (NOT t.luhn_valid AND r.to_npi <> 9999999999)
                THEN 'INVALID NPI' END,
           CASE WHEN (f.luhn_valid AND NOT f.in_nppes) OR (t.luhn_valid AND NOT t.in_nppes) THEN 'NPI NOT IN NPPES' END,
           CASE WHEN f.inactive_in_year OR t.inactive_in_year THEN 'NPI DEACTIVATED' END,
           CASE WHEN r.from_npi = r.to_npi THEN 'SELF LOOP' END,
           CASE WHEN r.patient_count < 11 THEN 'PRIVACY THRESHOLD' END,
           CASE WHEN r.transaction_count < r.patient_count THEN 'TRANSACTIONS BELOW PATIENTS' END,
           CASE WHEN least(r.patient_count, r.transaction_count, r.average_day_wait, r.std_day_wait) < 0
                THEN 'NEGATIVE VALUE' END,
           CASE WHEN row_number() OVER (PARTITION BY r.from_npi, r.to_npi ORDER BY r.line_number) > 1
                THEN 'DUPLICATE EDGE' END
       ], NULL) AS reasons
  FROM {schema}.{raw} r
  LEFT JOIN {schema}.{npis} f ON f.npi = r.from_npi
  LEFT JOIN {schema}.{npis} t ON t.npi = r.to_npi;

CREATE TABLE {schema}.{audit} AS
SELECT {year}::integer AS year, {source_file}::text AS source_file, line_number,
       from_npi::text || ',' || to_npi::text || ',' || patient_count || ',' || transaction_count || ','
           || average_day_wait || ',' || std_day_wait AS line,
       reasons[1] AS reason, reasons
  FROM flagged WHERE cardinality(reasons) > 0
UNION ALL
SELECT {year}, {source_file}, line_number, line, reason, ARRAY[reason] FROM {schema}.{rejects};

CREATE TABLE {schema}.{edges} AS
SELECT line_number, from_npi, to_npi, patient_count, transaction_count, average_day_wait, std_day_wait
  FROM flagged WHERE cardinality(reasons) = 0;
ALTER TABLE {schema}.{edges} ADD PRIMARY KEY (from_npi, to_npi);
ANALYZE {schema}.{edges};

CREATE TABLE {schema}.{dq} AS
SELECT {year}::integer AS year, check_name, rows FROM (
    SELECT 'LINES' AS check_name, (SELECT count(*) FROM flagged) + (SELECT count(*) FROM {schema}.{rejects}) AS rows
    UNION ALL SELECT 'CLEAN EDGES', (SELECT count(*) FROM {schema}.{edges})
    UNION ALL SELECT 'REJECTED LINES', (SELECT count(*) FROM {schema}.{audit})
    UNION ALL SELECT reason, count(*) FROM flagged, unnest(reasons) AS reason GROUP BY reason
    UNION ALL SELECT reason, count(*) FROM {schema}.{rejects} GROUP BY reason
) c;
