-- Wanted identifiers without a definite answer in the cache (never tried, or only errors so far),
-- in shard "shard" of "shards" (a stable hash split, so concurrent tasks never share work).
SELECT w.{key}
FROM maps.{wanted} w
WHERE NOT EXISTS (SELECT 1 FROM maps.{cache} c WHERE c.{key} = w.{key} AND c.status <> 'error')
  AND mod(mod(hashtext(w.{key})::bigint, %(shards)s) + %(shards)s, %(shards)s) = %(shard)s
ORDER BY w.{key};
