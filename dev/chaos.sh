#!/usr/bin/env bash
# chaos.sh: kill the worker (or the Temporal server) at random moments of a large run and check
# nothing is lost or doubled.
#
# Usage: dev/chaos.sh [-rows N] [-kills K] [-chunk N] [-heartbeat D] [-seed S] [--kill worker|temporal]
#                     [--first-kill-in-settlement]
#
# Starts its own Temporal server (devserver, headless) and local PostgreSQL cluster in a temporary
# directory, generates a file of N rows (default 1,000,000), runs it once undisturbed in a fresh
# database, then runs it again in another fresh database while a process is killed with SIGKILL
# K times (default 5) at random moments and restarted each time: the worker (--kill worker, the
# default), or the Temporal dev server (--kill temporal), which then keeps its state in a SQLite
# file and is restarted on the same port and file. It then checks that both runs wrote
# byte-identical output_transactions.csv and error_report.csv and that no table holds a key twice,
# and prints PASS or FAIL. With --first-kill-in-settlement, the first kill comes once a part of
# the run's settlement in parts has committed and before its last step (a file of more than
# 200,000 rows). Needs Go and the PostgreSQL server binaries. Keep the temporary directory with
# KEEP=1.
set -euo pipefail

rows=1000000 kills=5 chunk=50000 heartbeat=5s seed=1 target=worker in_settlement=0
while [ $# -gt 0 ]; do
	case "$1" in
	-rows) rows=$2; shift 2 ;;
	-kills) kills=$2; shift 2 ;;
	-chunk) chunk=$2; shift 2 ;;
	-heartbeat) heartbeat=$2; shift 2 ;;
	-seed) seed=$2; shift 2 ;;
	-kill|--kill) target=$2; shift 2 ;;
	-first-kill-in-settlement|--first-kill-in-settlement) in_settlement=1; shift ;;
	-h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "chaos.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$target" in
worker|temporal) ;;
*) echo "chaos.sh: --kill takes worker or temporal, not $target" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/txflow-chaos.XXXXXX")
chmod 755 "$work" # the PostgreSQL server runs as the postgres user when started as root
bin=$work/bin
mkdir -p "$bin" "$work/input" "$work/clean" "$work/chaos"

devserver_pid='' worker_pid=''
cleanup() {
	[ -n "$worker_pid" ] && kill -9 "$worker_pid" 2>/dev/null || true
	if [ -n "$devserver_pid" ]; then
		kill -TERM "$devserver_pid" 2>/dev/null || true
		wait "$devserver_pid" 2>/dev/null || true
	fi
	# PostgreSQL outlives a dev server killed with SIGKILL: stop it if it still runs.
	[ -x "${kit:-}" ] && "$kit" pgstop "$work/pg" || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*"; }

log "building worker, devserver and chaoskit"
(cd "$root" && go build -o "$bin/" ./worker ./dev/devserver ./dev/chaoskit)
kit=$bin/chaoskit

port=$("$kit" freeport)
# The same program as `go run ./dev/devserver --headless`, built above so that it can be stopped (or
# killed) by its pid. Killing Temporal needs its state on disk: a SQLite file, which the restarted
# server reopens; PostgreSQL, started with it, keeps running and is adopted on restart.
if [ "$target" = temporal ]; then
	state=(--db-filename "$work/temporal.db")
else
	state=(--in-memory)
fi
starts=0
start_devserver() {
	starts=$((starts + 1))
	devserver_log=$work/devserver-$starts.log
	env -u DATABASE_URL "$bin/devserver" "${state[@]}" --headless --port "$port" --pg-dir "$work/pg" \
		>"$devserver_log" 2>&1 &
	devserver_pid=$!
	for _ in $(seq 1 600); do
		grep -q 'Press Ctrl+C' "$devserver_log" 2>/dev/null && return 0
		kill -0 "$devserver_pid" 2>/dev/null || { cat "$devserver_log"; echo "FAIL: devserver did not start"; exit 1; }
		sleep 0.2
	done
	cat "$devserver_log"; echo "FAIL: devserver not ready after 2 minutes"; exit 1
}
log "starting Temporal on 127.0.0.1:$port (${state[*]}) and PostgreSQL in $work/pg"
start_devserver
admin_url=$(sed -n "s/.*export DATABASE_URL='\(.*\)'.*/\1/p" "$devserver_log")
[ -n "$admin_url" ] || { cat "$devserver_log"; echo "FAIL: no DATABASE_URL from devserver"; exit 1; }
clean_db=$("$kit" createdb -url "$admin_url" txflow_clean)
chaos_db=$("$kit" createdb -url "$admin_url" txflow_chaos)

export TEMPORAL_ADDRESS=127.0.0.1:$port TEMPORAL_NAMESPACE=default TEMPORAL_CONFIG_FILE=/dev/null
export TXFLOW_INPUT_DIR=$work/input TXFLOW_HTTP_ADDR=127.0.0.1:0 TXFLOW_LOG_LEVEL=warn

file=chaos-$rows.csv
log "generating $rows rows"
"$kit" gen -rows "$rows" -seed "$seed" "$work/input/$file"

start_worker() { # database, output root, log
	DATABASE_URL=$1 TXFLOW_OUTPUT_DIR=$2 "$bin/worker" >>"$3" 2>&1 &
	worker_pid=$!
}
stop_worker() {
	kill -TERM "$worker_pid" 2>/dev/null || true
	wait "$worker_pid" 2>/dev/null || true
	worker_pid=''
}

# 1. The clean run.
log "clean run"
start_worker "$clean_db" "$work/clean" "$work/worker-clean.log"
began=$(date +%s)
id=$("$kit" start -chunk "$chunk" -heartbeat "$heartbeat" "$file")
"$kit" wait "$id" | sed 's/^/    /'
took=$(( $(date +%s) - began ))
stop_worker
log "clean run took ${took}s"

# 2. The run under fire: K kills, each a random 1 to took/2 seconds after the previous restart
# (every kill also costs the heartbeat timeout, so they land before the run ends).
log "run with $kills kills of the $target"
start_worker "$chaos_db" "$work/chaos" "$work/worker-chaos.log"
"$kit" start -chunk "$chunk" -heartbeat "$heartbeat" "$file" >/dev/null
spread=$(( took / 2 > 2 ? took / 2 : 2 ))
landed=0
for i in $(seq 1 "$kills"); do
	pause=$(( RANDOM % spread + 1 ))
	if [ "$i" = 1 ] && [ "$in_settlement" = 1 ]; then
		parts=$("$kit" settling -url "$chaos_db") || { echo "FAIL: no settlement in parts seen"; exit 1; }
		pause="a part's commit ($parts new transactions)"
	else
		sleep "$pause"
		pause=${pause}s
	fi
	stage=$("$kit" stage "$id" 2>/dev/null || echo unknown)
	if "$kit" wait -timeout 1ms "$id" >/dev/null 2>&1; then
		log "kill $i: the run had already ended"
		break
	fi
	landed=$((landed + 1))
	if [ "$target" = temporal ]; then
		kill -9 "$devserver_pid"
		wait "$devserver_pid" 2>/dev/null || true
		log "kill $i after $pause, during $stage; restarting Temporal on port $port and $work/temporal.db"
		sleep 2 # the worker and the waiting clients see the server gone
		start_devserver
	else
		kill -9 "$worker_pid"
		wait "$worker_pid" 2>/dev/null || true
		log "kill $i after $pause, during $stage; restarting the worker"
		start_worker "$chaos_db" "$work/chaos" "$work/worker-chaos.log"
	fi
done
result=0
"$kit" wait -timeout 30m "$id" | sed 's/^/    /' || result=1
stop_worker

# 3. The checks.
fail() { echo "  FAIL: $*"; result=1; }
echo
echo "Checks"
[ "$landed" -eq "$kills" ] || fail "only $landed of $kills kills landed during the run (try more rows)"
for f in output_transactions.csv error_report.csv; do
	if cmp -s "$work/clean/$id/$f" "$work/chaos/$id/$f"; then
		echo "  ok: $f identical ($(wc -l <"$work/chaos/$id/$f") lines)"
	else
		fail "$f differs from the clean run's"
		cmp "$work/clean/$id/$f" "$work/chaos/$id/$f" 2>&1 | sed 's/^/    /' || true
	fi
done
echo "  duplicates, clean run:"
"$kit" dups -url "$clean_db" || fail "duplicates after the clean run"
echo "  duplicates, run with kills:"
"$kit" dups -url "$chaos_db" || fail "duplicates after the run with kills"
echo
if [ "$result" = 0 ]; then
	echo "PASS: $landed kills, outputs identical to the clean run, no duplicates"
else
	echo "FAIL (logs in $work; rerun with KEEP=1 to keep them)"
fi
exit "$result"
