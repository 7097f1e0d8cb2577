#!/bin/sh
# Runs docker-compose.yml's topology as processes on this machine, without Docker: PostgreSQL,
# Temporal on PostgreSQL with SQL visibility, its Web UI, and txflow workers. It runs the compose file's own
# scripts with the compose file's settings:
#   deploy/postgres/init-databases.sh   the roles and databases, on the cluster's first start
#   deploy/temporal/setup-schema.sh     Temporal's schemas, created or upgraded, on every start
#   deploy/temporal/create-namespace.sh the namespace, once the server answers
#   deploy/temporal/dynamicconfig.yaml  the server's dynamic configuration
#   deploy/local/temporal.yaml          the server's configuration (the image's template, for
#                                       PostgreSQL: the same variables)
# Like `docker compose up -d`, it starts what is not running and leaves the rest alone: run it
# again after a process died (or was killed) to start that one again. deploy/local/down.sh
# stops everything; deploy/local/starter.sh runs the starter against the stack.
#
# Everything lives under TXFLOW_LOCAL_STATE (default .txflow/local in the repository): bin/ (the
# binaries, built by deploy/local/build.sh unless TXFLOW_LOCAL_SKIP_BUILD=1), pg/ (the
# cluster), logs/, run/ (process ids) and txflow.env (the workers' and starter's settings).
#
# Settings, all optional (the compose file's names where it has them):
#   POSTGRES_PASSWORD, TEMPORAL_DB_PASSWORD, APP_DB_PASSWORD   as in the compose file's .env
#   TXFLOW_LOCAL_PG_PORT (15432)      PostgreSQL on 127.0.0.1 (password authentication)
#   TXFLOW_LOCAL_PG_FAST=1            fsync off: for tests, never for data you keep
#   FRONTEND_GRPC_PORT (7233), FRONTEND_HTTP_PORT (7243) and the other ports of temporal.yaml
#   TXFLOW_LOCAL_WORKERS (2)          worker processes
#   TXFLOW_APP_DB (txflow)            txflow's database (created by the caller if not txflow)
#   TXFLOW_INPUT_DIR, TXFLOW_OUTPUT_DIR (data/input, data/output), TXFLOW_UI_URL, and the
#   TXFLOW_* rules and tuning settings of the compose file's x-txflow-env.
#   TEMPORAL_UI_PORT (8233)           the Web UI on 127.0.0.1 (ui-server of the temporalio/ui
#                                     image's version, with the image's configuration: its
#                                     TEMPORAL_AUTH_* and other variables apply); 0: not started
# Delivery to NATS is off unless TXFLOW_NATS_URL is set (the compose file runs NATS; this does
# not).
#
# Mutual TLS between the clients (workers, starter, Web UI) and the frontend, with PEM files:
#   TEMPORAL_TLS_FRONTEND_CERT, TEMPORAL_TLS_FRONTEND_KEY   the frontend's certificate: TLS on
#   TEMPORAL_TLS_CLIENT1_CA_CERT      the CA client certificates must be signed by: required
#                                     (TEMPORAL_TLS_REQUIRE_CLIENT_AUTH=true unless set)
#   TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH   the clients' certificate
#   TEMPORAL_TLS_SERVER_CA_CERT_PATH  the CA the clients check the frontend's certificate with
#   TEMPORAL_TLS_SERVER_NAME          the name they check, when not the address's host
# The first three are the server's (deploy/local/temporal.yaml), the others the SDK's: they go to
# txflow.env for the workers and the starter, to the Web UI under its own names, and to the
# server's own worker service, which dials the frontend as a client too. Traffic between the
# server's services stays plain, on 127.0.0.1.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${TXFLOW_LOCAL_STATE:-$root/.txflow/local}
bin=$state/bin
logs=$state/logs
run=$state/run
mkdir -p "$state" "$logs" "$run"
state=$(cd "$state" && pwd)

POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-postgres}
TEMPORAL_DB_PASSWORD=${TEMPORAL_DB_PASSWORD:-temporal}
APP_DB_PASSWORD=${APP_DB_PASSWORD:-txflow}
pg_port=${TXFLOW_LOCAL_PG_PORT:-15432}
grpc_port=${FRONTEND_GRPC_PORT:-7233}
workers=${TXFLOW_LOCAL_WORKERS:-2}
app_db=${TXFLOW_APP_DB:-txflow}
ui_port=${TEMPORAL_UI_PORT:-8233}

log() { echo "up: $*"; }
fail() {
  echo "up: $*" >&2
  exit 1
}

# alive NAME: the process recorded in run/NAME.pid is running (a zombie, killed but not yet
# reaped by whatever adopted it, is not).
alive() {
  [ -f "$run/$1.pid" ] || return 1
  case "$(ps -o stat= -p "$(cat "$run/$1.pid")" 2>/dev/null)" in
  "" | Z*) return 1 ;;
  esac
}

# spawn NAME CMD...: starts CMD in the background, in a session of its own (a terminal's Ctrl-C
# does not reach it), its output appended to logs/NAME.log, its pid in run/NAME.pid.
spawn() {
  name=$1
  shift
  echo "--- start $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$logs/$name.log"
  setsid "$@" </dev/null >>"$logs/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

if [ "${TXFLOW_LOCAL_SKIP_BUILD:-0}" != 1 ]; then
  "$here/build.sh" "$bin"
fi
for b in worker starter temporal-server temporal-sql-tool temporal temporal-ui-server; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing: run deploy/local/build.sh $bin"
done
PATH=$bin:$PATH
export PATH

# --- PostgreSQL: the compose file's postgres service. initdb and the server refuse to run as
# root: they run as the postgres user then, which must be able to reach the state directory.
pgdata=$state/pg
as_pg=""
if [ "$(id -u)" = 0 ]; then
  pg_user=postgres
  id "$pg_user" >/dev/null 2>&1 || pg_user=nobody
  as_pg="runuser -u $pg_user --"
fi
pg_bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
[ -x "$pg_bindir/pg_ctl" ] || pg_bindir=$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")
[ -x "$pg_bindir/pg_ctl" ] || fail "PostgreSQL's server binaries (initdb, pg_ctl) are not installed; set PG_BINDIR"

fresh=0
if [ ! -f "$pgdata/PG_VERSION" ]; then
  log "initialising PostgreSQL in $pgdata"
  mkdir -p "$pgdata"
  pwfile=$state/.pgpass.init
  (umask 077 && printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile")
  if [ -n "$as_pg" ]; then chown "$pg_user" "$pgdata" "$pwfile"; fi
  # As the postgres image does: the socket trusts local users, TCP asks for a password.
  $as_pg "$pg_bindir/initdb" -D "$pgdata" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$pwfile" -E UTF8 >"$logs/initdb.log" 2>&1 || {
    rm -f "$pwfile"
    cat "$logs/initdb.log" >&2
    fail "initdb failed"
  }
  rm -f "$pwfile"
  fresh=1
fi
pg_opts="-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdata"
if [ "${TXFLOW_LOCAL_PG_FAST:-0}" = 1 ]; then
  pg_opts="$pg_opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
if ! $as_pg "$pg_bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
  log "starting PostgreSQL on 127.0.0.1:$pg_port"
  $as_pg "$pg_bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -o "$pg_opts" -w -t 60 start >/dev/null ||
    { tail -n 20 "$pgdata/server.log" >&2; fail "PostgreSQL did not start"; }
fi
export PGHOST=127.0.0.1 PGPORT=$pg_port
if [ "$fresh" = 1 ]; then
  # The image runs the script once, on an empty volume, as POSTGRES_USER.
  log "creating roles and databases (deploy/postgres/init-databases.sh)"
  PGPASSWORD=$POSTGRES_PASSWORD POSTGRES_USER=postgres TEMPORAL_DB_PASSWORD=$TEMPORAL_DB_PASSWORD \
    APP_DB_PASSWORD=$APP_DB_PASSWORD sh "$root/deploy/postgres/init-databases.sh" >>"$logs/init-databases.log" 2>&1 ||
    { cat "$logs/init-databases.log" >&2; fail "deploy/postgres/init-databases.sh failed"; }
fi

# --- Temporal: the temporal-schema, temporal and temporal-namespace services.
if ! alive temporal; then
  schema_root=${TEMPORAL_SCHEMA_ROOT:-$(cd "$root/dev" && go list -m -f '{{.Dir}}' go.temporal.io/server)/schema/postgresql/v12}
  log "Temporal's schemas (deploy/temporal/setup-schema.sh)"
  SQL_HOST=127.0.0.1 SQL_PORT=$pg_port SQL_USER=temporal SQL_PASSWORD=$TEMPORAL_DB_PASSWORD \
    TEMPORAL_SCHEMA_ROOT=$schema_root sh "$root/deploy/temporal/setup-schema.sh" >>"$logs/temporal-schema.log" 2>&1 ||
    { tail -n 20 "$logs/temporal-schema.log" >&2; fail "deploy/temporal/setup-schema.sh failed"; }
  if temporal operator cluster health --address "127.0.0.1:$grpc_port" >/dev/null 2>&1; then
    fail "another Temporal server answers on 127.0.0.1:$grpc_port: stop it or set FRONTEND_GRPC_PORT"
  fi
  log "starting Temporal on 127.0.0.1:$grpc_port"
  # The compose file's temporal service environment; TEMPORAL_TLS_FRONTEND_* and
  # TEMPORAL_TLS_CLIENT1_CA_CERT pass through, the rest of TLS is derived from the clients'.
  require_client_auth=false
  [ -z "${TEMPORAL_TLS_CLIENT1_CA_CERT:-}" ] || require_client_auth=true
  # The server's own clients dial the frontend's address without a name to check: 127.0.0.1.
  frontend_name=""
  [ -z "${TEMPORAL_TLS_FRONTEND_CERT:-}" ] || frontend_name=${TEMPORAL_TLS_SERVER_NAME:-127.0.0.1}
  spawn temporal env TEMPORAL_TLS_REQUIRE_CLIENT_AUTH="${TEMPORAL_TLS_REQUIRE_CLIENT_AUTH:-$require_client_auth}" \
    TEMPORAL_TLS_SERVER_CA_CERT="${TEMPORAL_TLS_SERVER_CA_CERT:-${TEMPORAL_TLS_SERVER_CA_CERT_PATH:-}}" \
    TEMPORAL_TLS_FRONTEND_SERVER_NAME="${TEMPORAL_TLS_FRONTEND_SERVER_NAME:-$frontend_name}" \
    TEMPORAL_TLS_SYSTEM_WORKER_CERT="${TEMPORAL_TLS_SYSTEM_WORKER_CERT:-${TEMPORAL_TLS_CLIENT_CERT_PATH:-}}" \
    TEMPORAL_TLS_SYSTEM_WORKER_KEY="${TEMPORAL_TLS_SYSTEM_WORKER_KEY:-${TEMPORAL_TLS_CLIENT_KEY_PATH:-}}" \
    DB=postgres12 DB_PORT="$pg_port" POSTGRES_SEEDS=127.0.0.1 POSTGRES_USER=temporal \
    POSTGRES_PWD="$TEMPORAL_DB_PASSWORD" DBNAME=temporal VISIBILITY_DBNAME=temporal_visibility BIND_ON_IP=127.0.0.1 \
    DYNAMIC_CONFIG_FILE_PATH="$root/deploy/temporal/dynamicconfig.yaml" \
    "$bin/temporal-server" --config-file "$root/deploy/local/temporal.yaml" --allow-no-auth start
fi
# The compose file's health check: the frontend serves requests.
tries=0
until temporal operator cluster health --address "127.0.0.1:$grpc_port" >/dev/null 2>&1; do
  alive temporal || { tail -n 20 "$logs/temporal.log" >&2; fail "the Temporal server exited (logs/temporal.log)"; }
  tries=$((tries + 1))
  [ "$tries" -lt 120 ] || fail "Temporal does not answer on 127.0.0.1:$grpc_port after 60 s"
  sleep 0.5
done
alive temporal || { tail -n 20 "$logs/temporal.log" >&2; fail "the Temporal server exited (logs/temporal.log)"; }
TEMPORAL_ADDRESS=127.0.0.1:$grpc_port TEMPORAL_NAMESPACE=default sh "$root/deploy/temporal/create-namespace.sh" \
  >>"$logs/temporal-namespace.log" 2>&1 ||
  { tail -n 20 "$logs/temporal-namespace.log" >&2; fail "deploy/temporal/create-namespace.sh failed"; }

# --- txflow: the compose file's x-txflow-env, for the workers and the starter.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
  echo "# written by deploy/local/up.sh: the settings of the workers and the starter"
  echo "export TEMPORAL_ADDRESS=$(q "127.0.0.1:$grpc_port")"
  echo "export TEMPORAL_NAMESPACE=default"
  echo "export DATABASE_URL=$(q "postgres://txflow:$APP_DB_PASSWORD@127.0.0.1:$pg_port/$app_db?sslmode=disable")"
  echo "export TXFLOW_INPUT_DIR=$(q "${TXFLOW_INPUT_DIR:-$root/data/input}")"
  echo "export TXFLOW_OUTPUT_DIR=$(q "${TXFLOW_OUTPUT_DIR:-$root/data/output}")"
  echo "export TXFLOW_UI_URL=$(q "${TXFLOW_UI_URL:-http://localhost:8233}")"
  for v in TXFLOW_LOG_LEVEL TXFLOW_TAG_WORDS TXFLOW_LARGE_SALE_ABOVE TXFLOW_EXPENSE_BELOW TXFLOW_AMOUNT_LIMIT \
    TXFLOW_MAX_FIELD_BYTES TXFLOW_BATCH_SIZE TEMPORAL_CONFIG_FILE TEMPORAL_TLS TEMPORAL_TLS_CLIENT_CERT_PATH \
    TEMPORAL_TLS_CLIENT_KEY_PATH TEMPORAL_TLS_SERVER_CA_CERT_PATH TEMPORAL_TLS_SERVER_NAME; do
    eval "val=\${$v:-}"
    [ -z "$val" ] || echo "export $v=$(q "$val")"
  done
} >"$state/txflow.env.tmp"
(umask 077 && mv "$state/txflow.env.tmp" "$state/txflow.env")
mkdir -p "${TXFLOW_INPUT_DIR:-$root/data/input}" "${TXFLOW_OUTPUT_DIR:-$root/data/output}"

# started NAME LINE OLD: waits until logs/NAME.log holds more than OLD lines with LINE.
started() {
  tries=0
  while [ "$(grep -c "$2" "$logs/$1.log" 2>/dev/null || true)" -le "${3:-0}" ]; do
    alive "$1" || { tail -n 20 "$logs/$1.log" >&2; fail "$1 exited (logs/$1.log)"; }
    tries=$((tries + 1))
    [ "$tries" -lt 120 ] || fail "$1 did not start within 60 s (logs/$1.log)"
    sleep 0.5
  done
}

# --- The Web UI: the compose file's temporal-ui service. The image runs
# `ui-server --env docker start` on its config/docker.yaml, which reads the environment; the same
# file, from the ui-server module, with the host set in base.yaml (the image listens on every
# interface of its container).
if [ "$ui_port" != 0 ] && ! alive temporal-ui; then
  ui_root=$state/ui
  mkdir -p "$ui_root/config"
  printf 'host: 127.0.0.1\n' >"$ui_root/config/base.yaml"
  ln -sf "$(cd "$root/dev" && go list -m -f '{{.Dir}}' github.com/temporalio/ui-server/v2)/config/docker.yaml" \
    "$ui_root/config/docker.yaml"
  log "starting the Web UI on 127.0.0.1:$ui_port"
  before=$(grep -c 'http server started' "$logs/temporal-ui.log" 2>/dev/null || true)
  spawn temporal-ui env TEMPORAL_ADDRESS="127.0.0.1:$grpc_port" TEMPORAL_DEFAULT_NAMESPACE=default \
    TEMPORAL_UI_PORT="$ui_port" TEMPORAL_TLS_CERT="${TEMPORAL_TLS_CLIENT_CERT_PATH:-}" \
    TEMPORAL_TLS_KEY="${TEMPORAL_TLS_CLIENT_KEY_PATH:-}" TEMPORAL_TLS_CA="${TEMPORAL_TLS_SERVER_CA_CERT_PATH:-}" \
    TEMPORAL_TLS_ENABLE_HOST_VERIFICATION="${TEMPORAL_TLS_ENABLE_HOST_VERIFICATION:-true}" \
    "$bin/temporal-ui-server" --root "$ui_root" --env docker start
  started temporal-ui 'http server started' "${before:-0}"
fi

i=1
while [ "$i" -le "$workers" ]; do
  name=worker-$i
  if ! alive "$name"; then
    log "starting $name"
    before=$(grep -c 'worker started' "$logs/$name.log" 2>/dev/null || true)
    # The compose file's worker service environment (the HTTP port is picked by the kernel:
    # several workers share the host).
    # shellcheck disable=SC2016
    spawn "$name" env TXFLOW_HTTP_ADDR="${TXFLOW_LOCAL_HTTP_ADDR:-127.0.0.1:0}" \
      TXFLOW_WORKER_CONCURRENCY="${TXFLOW_WORKER_CONCURRENCY:-4}" TXFLOW_NATS_URL="${TXFLOW_NATS_URL:-}" \
      sh -c '. "$1" && exec "$2"' sh "$state/txflow.env" "$bin/worker"
    started "$name" 'worker started' "${before:-0}"
  fi
  i=$((i + 1))
done
ui=""
[ "$ui_port" = 0 ] || ui=", Web UI http://127.0.0.1:$ui_port"
log "up: Temporal 127.0.0.1:$grpc_port, PostgreSQL 127.0.0.1:$pg_port$ui, $workers workers; logs in $logs"
