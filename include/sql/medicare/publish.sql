-- Swap the build schemas in, in one transaction: readers see the previous complete set of tables or
-- the new one, never a mix. The objects keep their references (by OID) through the renames.
CREATE SCHEMA IF NOT EXISTS {medicare};  -- the first run has nothing to replace
CREATE SCHEMA IF NOT EXISTS {audit};
CREATE SCHEMA IF NOT EXISTS {qc};
ALTER SCHEMA {medicare} RENAME TO {medicare_old};
ALTER SCHEMA {audit} RENAME TO {audit_old};
ALTER SCHEMA {qc} RENAME TO {qc_old};
ALTER SCHEMA {medicare_next} RENAME TO {medicare};
ALTER SCHEMA {audit_next} RENAME TO {audit};
ALTER SCHEMA {qc_next} RENAME TO {qc};
DROP SCHEMA {medicare_old} CASCADE;
DROP SCHEMA {audit_old} CASCADE;
DROP SCHEMA {qc_old} CASCADE;
