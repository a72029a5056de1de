INSERT INTO claimsflow_meta.medicare_layouts (table_name, year, fts_path, fts_sha256, record_length, columns, layout)
VALUES (%(table_name)s, %(year)s, %(fts_path)s, %(fts_sha256)s, %(record_length)s, %(columns)s, %(layout)s)
ON CONFLICT (table_name) DO UPDATE SET
    year = EXCLUDED.year, fts_path = EXCLUDED.fts_path, fts_sha256 = EXCLUDED.fts_sha256,
    record_length = EXCLUDED.record_length, columns = EXCLUDED.columns, layout = EXCLUDED.layout,
    parsed_at = now();
