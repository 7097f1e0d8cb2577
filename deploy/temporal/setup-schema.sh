#!/bin/sh
# Creates or upgrades the Temporal server's schemas (run from temporalio/admin-tools, whose
# version must match the server's). Safe to run on every start: setup-schema only adds the
# version tables when they are missing, and update-schema applies only the versions not yet
# applied. The databases themselves are created by deploy/postgres/init-databases.sh.
# Connection: SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (read by temporal-sql-tool).
# TEMPORAL_SCHEMA_ROOT: the schema files, by default the image's; deploy/local/up.sh points it
# at schema/postgresql/v12 of the go.temporal.io/server module it builds the tool from.
set -eu

schema_root=${TEMPORAL_SCHEMA_ROOT:-/etc/temporal/schema/postgresql/v12}
for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*}
  dir=${db##*:}
  echo "schema of database $name"
  temporal-sql-tool --plugin postgres12 --db "$name" setup-schema -v 0.0
  temporal-sql-tool --plugin postgres12 --db "$name" update-schema -d "$schema_root/$dir/versioned"
done
echo "Temporal schemas are up to date"
