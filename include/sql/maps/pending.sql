-- Wanted identifiers without a definite answer in the cache (never tried, or only errors so far).
SELECT w.{key}
FROM maps.{wanted} w
WHERE NOT EXISTS (SELECT 1 FROM maps.{cache} c WHERE c.{key} = w.{key} AND c.status <> 'error')
ORDER BY w.{key};
