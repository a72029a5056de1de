-- HyperLogLog estimate of the distinct ids just copied: proves the hll extension works end to end.
SELECT hll_cardinality(hll_add_agg(hll_hash_bigint(id)))::bigint AS estimate, count(*) AS copied
  FROM healthcheck_probe
