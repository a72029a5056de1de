-- One row per wanted NPI: the npi.parquet columns (the seed's order), then the flat mapping columns.
-- Nested structures come out as JSON text of the first result, as the API returns them.
WITH c AS (
    SELECT w.npi, w.luhn_valid, k.status, k.source, k.url, k.error_message, k.api_run_id, k.requested_at_utc,
           k.request_params, k.response_json, k.response_json #> '{results,0}' AS r
    FROM maps.npi_wanted w
    LEFT JOIN maps.npi_cache k ON k.npi = w.npi
)
SELECT c.npi,
       (c.r -> 'basic')::text              AS basic,
       (c.r -> 'addresses')::text          AS addresses,
       (c.r -> 'practiceLocations')::text  AS practice_locations,
       (c.r -> 'taxonomies')::text         AS taxonomies,
       (c.r -> 'identifiers')::text        AS identifiers,
       (c.r -> 'other_names')::text        AS other_names,
       (c.r -> 'endpoints')::text          AS endpoints,
       c.url,
       c.error_message,
       c.api_run_id,
       c.requested_at_utc,
       c.request_params::text              AS request_params,
       (c.response_json ->> 'result_count')::int AS results,
       c.response_json::text               AS response_json,
       -- flat mapping columns
       coalesce(c.status, CASE WHEN c.luhn_valid THEN 'missing_cache' ELSE 'invalid' END) AS status,
       c.source,
       c.r ->> 'enumeration_type'          AS enumeration_type,
       coalesce(nullif(c.r #>> '{basic,organization_name}', ''),
                nullif(concat_ws(', ', c.r #>> '{basic,last_name}', c.r #>> '{basic,first_name}'), '')) AS provider_name,
       c.r #>> '{basic,credential}'        AS credential,
       c.r #>> '{basic,status}'            AS npi_status,
       c.r #>> '{basic,enumeration_date}'  AS enumeration_date,
       c.r #>> '{basic,deactivation_date}' AS deactivation_date,
       pt.code                             AS primary_taxonomy_code,
       pt.descr                            AS primary_taxonomy_desc,
       loc.state                           AS practice_state,
       loc.postal_code                     AS practice_postal_code,
       loc.city                            AS practice_city
FROM c
LEFT JOIN LATERAL (
    SELECT t ->> 'code' AS code, t ->> 'desc' AS descr
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c.r -> 'taxonomies') = 'array' THEN c.r -> 'taxonomies' END)
         WITH ORDINALITY AS x(t, i)
    ORDER BY (t ->> 'primary')::boolean IS TRUE DESC, i
    LIMIT 1
) pt ON true
LEFT JOIN LATERAL (
    SELECT a ->> 'state' AS state, a ->> 'postal_code' AS postal_code, a ->> 'city' AS city
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c.r -> 'addresses') = 'array' THEN c.r -> 'addresses' END) AS y(a)
    WHERE a ->> 'address_purpose' = 'LOCATION'
    LIMIT 1
) loc ON true
ORDER BY c.npi;
