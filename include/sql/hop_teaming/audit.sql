-- The year's audit: every row with a finding (all its reasons; the first is `reason`) and every line
-- the load refused; and the data-quality counts. {checked_rows}: the rows checks.sql wrote (clean +
-- flagged), so the clean count needs no scan of the year's edges.
CREATE TABLE {schema}.{audit} AS
SELECT {year}::integer AS year, {source_file}::text AS source_file, line_number,
       concat(from_npi, ',', to_npi, ',', patient_count, ',', transaction_count, ',', average_day_wait, ',',
              std_day_wait) AS line,  -- concat: an empty field stays empty
       reasons[1] AS reason, reasons
  FROM {schema}.{flagged}
UNION ALL
SELECT {year}, {source_file}, line_number, line, reason, ARRAY[reason] FROM {schema}.{rejects};
CREATE INDEX ON {schema}.{audit} (reason);

CREATE TABLE {schema}.{dq} AS
SELECT {year}::integer AS year, check_name, rows FROM (
    SELECT 'LINES' AS check_name, {checked_rows}::bigint + (SELECT count(*) FROM {schema}.{rejects}) AS rows
    UNION ALL SELECT 'CLEAN EDGES', {checked_rows}::bigint - (SELECT count(*) FROM {schema}.{flagged})
    UNION ALL SELECT 'REJECTED LINES', (SELECT count(*) FROM {schema}.{audit})
    UNION ALL SELECT reason, count(*) FROM {schema}.{flagged}, unnest(reasons) AS reason GROUP BY reason
    UNION ALL SELECT reason, count(*) FROM {schema}.{rejects} GROUP BY reason
) c;
