#!/bin/sh
# First start of the PostgreSQL container (docker-entrypoint-initdb.d): one role and database for
# txflow, one role owning Temporal's two databases. Runs only when the data volume is empty.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v temporal_password="$TEMPORAL_DB_PASSWORD" \
  -v app_password="$APP_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

CREATE ROLE txflow LOGIN PASSWORD :'app_password';
CREATE DATABASE txflow OWNER txflow;
SQL
