INSERT INTO claimsflow_meta.download_manifest
       (dataset, version, url, path, bytes, bytes_transferred, sha256, etag, last_modified, status, error_message,
        dag_id, run_id, task_id, details)
VALUES (%(dataset)s, %(version)s, %(url)s, %(path)s, %(bytes)s, %(bytes_transferred)s, %(sha256)s, %(etag)s,
        %(last_modified)s, %(status)s, %(error_message)s, %(dag_id)s, %(run_id)s, %(task_id)s, %(details)s)
RETURNING download_id
