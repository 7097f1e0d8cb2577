#!/bin/sh
# Builds the binaries deploy/local/up.sh runs into DIR (default .txflow/local/bin): txflow's
# worker and starter, and from the pinned go.temporal.io/server module (the dev module's
# go.mod, the version of the compose file's images) the server as temporal-server and
# temporal-sql-tool, plus dev/temporalop as `temporal`, standing in for the Temporal CLI's
# operator commands that deploy/temporal/create-namespace.sh runs, and the Web UI's server from
# the pinned github.com/temporalio/ui-server/v2 module (the temporalio/ui image's version) as
# temporal-ui-server.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-${TXFLOW_LOCAL_STATE:-$root/.txflow/local}/bin}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

cd "$root"
go build -o "$dir/" ./worker ./starter
cd "$root/dev"
go build -o "$dir/temporal-server" go.temporal.io/server/cmd/server
go build -o "$dir/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql
go build -o "$dir/temporal" ./temporalop
go build -o "$dir/temporal-ui-server" github.com/temporalio/ui-server/v2/cmd/server
