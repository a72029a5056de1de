-- A new load of a target supersedes any earlier one still marked running (its worker died).
WITH superseded AS (
    UPDATE claimsflow_meta.load_manifest
       SET status = 'failed', finished_at = now(),
           error_message = 'interrupted: superseded by a new load of the same target'
     WHERE target = %(target)s AND status = 'running'
)
INSERT INTO claimsflow_meta.load_manifest
       (dataset, target, source_path, source_bytes, source_checksum, status, dag_id, run_id, task_id, details)
VALUES (%(dataset)s, %(target)s, %(source_path)s, %(source_bytes)s, %(source_checksum)s, 'running',
        %(dag_id)s, %(run_id)s, %(task_id)s, %(details)s)
RETURNING load_id
