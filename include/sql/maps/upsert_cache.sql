-- Move the rows COPYed into the temporary {staging} table (identifier in column key) into the cache
-- {cache} (key column {key}).
-- A row for the same identifier is replaced, except that an error never replaces found/not_found.
INSERT INTO maps.{cache} AS c ({key}, status, source, url, request_params, api_run_id, requested_at_utc,
                               error_message, response_json, updated_at)
SELECT DISTINCT ON (s.key) s.key, s.status, s.source, s.url, s.request_params::jsonb, s.api_run_id,
       s.requested_at_utc, s.error_message, s.response_json::jsonb, clock_timestamp()
FROM {staging} s
ORDER BY s.key, s.ord DESC
ON CONFLICT ({key}) DO UPDATE SET
    status = EXCLUDED.status, source = EXCLUDED.source, url = EXCLUDED.url,
    request_params = EXCLUDED.request_params, api_run_id = EXCLUDED.api_run_id,
    requested_at_utc = EXCLUDED.requested_at_utc, error_message = EXCLUDED.error_message,
    response_json = EXCLUDED.response_json, updated_at = EXCLUDED.updated_at
WHERE NOT (EXCLUDED.status = 'error' AND c.status IN ('found', 'not_found'));
