-- How the wanted identifiers stand in the cache: status -> count ('missing_cache' = never tried).
SELECT coalesce(c.status, 'missing_cache') AS status, count(*) AS n
FROM maps.{wanted} w
LEFT JOIN maps.{cache} c ON c.{key} = w.{key}
GROUP BY 1
ORDER BY 1;
