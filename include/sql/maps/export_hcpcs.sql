-- One row per wanted HCPCS code: the hcpcs.parquet columns (the seed's order), then the flat mapping
-- columns. response_json is the Clinical Tables v3 array for this one code:
-- [total, [code], {ef_field: [value]}, [[display fields]]] (fallback rows are synthesised in the same shape).
WITH c AS (
    SELECT w.hcpcs_code, k.status, k.source, k.url, k.error_message, k.api_run_id, k.requested_at_utc,
           k.request_params, k.response_json,
           CASE WHEN jsonb_typeof(k.response_json) = 'array' THEN k.response_json -> 2 END AS ef
    FROM maps.hcpcs_wanted w
    LEFT JOIN maps.hcpcs_cache k ON k.hcpcs_code = w.hcpcs_code
)
SELECT c.hcpcs_code,
       c.ef #>> '{short_desc,0}'  AS ef_short_desc,
       c.ef #>> '{long_desc,0}'   AS ef_long_desc,
       c.ef #>> '{add_dt,0}'      AS ef_add_dt,
       c.ef #>> '{act_eff_dt,0}'  AS ef_act_eff_dt,
       c.ef #>> '{term_dt,0}'     AS ef_term_dt,
       c.ef #>> '{obsolete,0}'    AS ef_obsolete,
       c.ef #>> '{is_noc,0}'      AS ef_is_noc,
       CASE WHEN jsonb_typeof(c.response_json) = 'array' THEN (c.response_json -> 1)::text END AS response_codes,
       CASE WHEN jsonb_typeof(c.response_json) = 'array' THEN (c.response_json -> 3)::text END AS response_display,
       c.ef::text                 AS response_extra_fields,
       c.url,
       c.error_message,
       c.api_run_id,
       c.requested_at_utc,
       c.request_params::text     AS request_params,
       c.response_json::text      AS response_json,
       -- flat mapping columns
       coalesce(c.status, 'missing_cache') AS status,
       c.source
FROM c
ORDER BY c.hcpcs_code;
