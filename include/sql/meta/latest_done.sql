SELECT load_id, dataset, target, source_path, source_bytes, source_checksum, row_count,
       dag_id, run_id, task_id, started_at, finished_at, details
  FROM claimsflow_meta.load_manifest
 WHERE target = %(target)s AND status = 'done'
 ORDER BY finished_at DESC, load_id DESC
 LIMIT 1
