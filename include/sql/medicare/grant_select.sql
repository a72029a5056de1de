-- After grant_select: what the role still cannot read in the given schemas (relation NULL = the
-- schema itself). A GRANT by a role that neither owns the object nor holds the grant option only
-- warns "no privileges were granted", so the result is checked rather than assumed.
SELECT n.nspname::text AS schema, NULL::text AS relation
  FROM pg_namespace n
 WHERE n.nspname = ANY (%(schemas)s::name[])
   AND NOT has_schema_privilege(%(role)s::name, n.oid, 'USAGE')
UNION ALL
SELECT n.nspname::text, c.relname::text
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY (%(schemas)s::name[])
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND NOT has_table_privilege(%(role)s::name, c.oid, 'SELECT')
 ORDER BY 1, 2 NULLS FIRST
