#!/bin/bash
# Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
# POSTGRES_USER/POSTGRES_DB (airflow/airflow) are created by the entrypoint; this adds the data database.
set -euo pipefail
: "${CLAIMSFLOW_DB:=claimsflow}"
: "${CLAIMSFLOW_DB_USER:=claimsflow}"
: "${CLAIMSFLOW_DB_PASSWORD:?set CLAIMSFLOW_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$CLAIMSFLOW_DB" -v role="$CLAIMSFLOW_DB_USER" -v pw="$CLAIMSFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"role";
\connect :"db"
CREATE EXTENSION IF NOT EXISTS hll;
SQL
