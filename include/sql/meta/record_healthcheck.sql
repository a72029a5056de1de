INSERT INTO claimsflow_meta.healthcheck
       (run_id, server_version, hll_version, copy_rows, copy_seconds, hll_estimate, data_root, data_root_free_bytes)
VALUES (%(run_id)s, %(server_version)s, %(hll_version)s, %(copy_rows)s, %(copy_seconds)s, %(hll_estimate)s,
        %(data_root)s, %(data_root_free_bytes)s)
