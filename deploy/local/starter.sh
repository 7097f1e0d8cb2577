#!/bin/sh
# Runs the starter against the stack deploy/local/up.sh started, with its settings
# (.txflow/local/txflow.env), like `docker compose run --rm starter ARGS`:
#   deploy/local/starter.sh run transactions.csv
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${TXFLOW_LOCAL_STATE:-$root/.txflow/local}
[ -f "$state/txflow.env" ] || { echo "starter: no $state/txflow.env: run deploy/local/up.sh first" >&2; exit 1; }
. "$state/txflow.env"
exec "$state/bin/starter" "$@"
