#!/bin/sh
# Stops what deploy/local/up.sh started: the workers (SIGTERM: they finish their running
# activities for up to 30 s, as with the compose file's stop_grace_period), then the Web UI,
# Temporal and PostgreSQL. The state (.txflow/local: the cluster, logs) is kept; remove the directory to
# start from scratch. `down.sh workers` stops the workers only.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${TXFLOW_LOCAL_STATE:-$root/.txflow/local}
run=$state/run

# stop NAME GRACE: SIGTERM to the process in run/NAME.pid, SIGKILL after GRACE seconds.
stop() {
  f=$run/$1.pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -TERM "$pid" 2>/dev/null; then
    n=0
    while case "$(ps -o stat= -p "$pid" 2>/dev/null)" in "" | Z*) false ;; *) true ;; esac do
      n=$((n + 1))
      if [ "$n" -gt $(($2 * 10)) ]; then
        echo "down: $1 (pid $pid) still runs after $2 s: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    echo "down: $1 stopped"
  fi
  rm -f "$f"
}

for f in "$run"/worker-*.pid; do
  [ -e "$f" ] || continue
  name=${f##*/}
  stop "${name%.pid}" 45
done
[ "${1:-}" = workers ] && exit 0

stop temporal-ui 10
stop temporal 30
if [ -f "$state/pg/PG_VERSION" ]; then
  as_pg=""
  if [ "$(id -u)" = 0 ]; then
    as_pg="runuser -u $(stat -c %U "$state/pg") --"
  fi
  pg_bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
  [ -x "$pg_bindir/pg_ctl" ] || pg_bindir=$(dirname "$(command -v pg_ctl)")
  if $as_pg "$pg_bindir/pg_ctl" -D "$state/pg" status >/dev/null 2>&1; then
    $as_pg "$pg_bindir/pg_ctl" -D "$state/pg" -m fast -w stop >/dev/null
    echo "down: PostgreSQL stopped"
  fi
fi
