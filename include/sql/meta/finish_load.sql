UPDATE claimsflow_meta.load_manifest
   SET status = %(status)s, row_count = %(row_count)s, error_message = %(error_message)s,
       finished_at = now(), details = details || %(details)s
 WHERE load_id = %(load_id)s AND status = 'running'
RETURNING load_id
