-- The careful path: every line was loaded as one text value; split and check here. A line with six
-- well-formed fields gets its types; any other goes to the rejects with the reason.
CREATE TEMPORARY TABLE split ON COMMIT DROP AS
SELECT line_number, line, string_to_array(line, ',') AS f FROM {schema}.{lines};

INSERT INTO {schema}.{rejects} (line_number, line, reason)
SELECT line_number, line,
       CASE WHEN cardinality(f) <> 6 THEN 'MALFORMED LINE'
            ELSE 'NON-NUMERIC VALUE' END
  FROM split
 WHERE cardinality(f) <> 6
    OR NOT (btrim(f[1]) ~ '^-?[0-9]{1,18}$' AND btrim(f[2]) ~ '^-?[0-9]{1,18}$'
            AND btrim(f[3]) ~ '^-?[0-9]{1,18}$' AND btrim(f[4]) ~ '^-?[0-9]{1,18}$'
            AND btrim(f[5]) ~ '^-?([0-9]+\.?[0-9]*|\.[0-9]+)$' AND btrim(f[6]) ~ '^-?([0-9]+\.?[0-9]*|\.[0-9]+)$');

INSERT INTO {schema}.{raw} (line_number, from_npi, to_npi, patient_count, transaction_count, average_day_wait, std_day_wait)
SELECT line_number, btrim(f[1])::bigint, btrim(f[2])::bigint, btrim(f[3])::bigint, btrim(f[4])::bigint,
       btrim(f[5])::double precision, btrim(f[6])::double precision
  FROM split s
 WHERE NOT EXISTS (SELECT FROM {schema}.{rejects} r WHERE r.line_number = s.line_number);

DROP TABLE {schema}.{lines};
