-- The newest version of a dataset that was fetched and verified (for the monthly NPPES refresh).
SELECT version, url, path, fetched_at
  FROM claimsflow_meta.download_manifest
 WHERE dataset = %(dataset)s AND status IN ('downloaded', 'resumed', 'unchanged', 'reused', 'extracted')
   AND version IS NOT NULL
 ORDER BY version DESC, fetched_at DESC
 LIMIT 1
