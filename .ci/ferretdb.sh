#!/usr/bin/env bash
# Start FerretDB (MongoDB wire protocol, SQLite backend) for Vigil's MongoDB
# store tests; see internal/tools/ferretdb.
#
#   eval "$(bash .ci/ferretdb.sh start --data DIR [--port 27018] [--bin .ci/bin/ferretdb] [--pidfile FILE])"
#   ... go test ...            # VIGIL_TEST_MONGO_URI is now exported
#   bash .ci/ferretdb.sh stop [--pidfile FILE]
#
# start builds the tool, runs it in the background on 127.0.0.1:PORT (0 picks
# a free port), waits up to 60 s for it to accept connections, writes its PID
# to the pidfile and prints one line on stdout:
#   export VIGIL_TEST_MONGO_URI='mongodb://127.0.0.1:PORT/'
# Its log goes to PIDFILE.log. --data defaults to a new temporary directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmd=${1:-start}
shift || true
bin=$root/.ci/bin/ferretdb
pidfile=$root/.ci/bin/ferretdb.pid
data=
port=27018
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2 ;;
    --data) data=$2 ;;
    --port) port=$2 ;;
    --pidfile) pidfile=$2 ;;
    *) echo "ferretdb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done

stop() {
  [ -f "$pidfile" ] || return 0
  local pid args
  pid=$(cat "$pidfile")
  # only signal it if that PID still runs our tool (PIDs get reused)
  args=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || args=
  if [[ $args == *" -dir "*" -listen "* ]] && kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case $cmd in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: ferretdb.sh start|stop [options]" >&2; exit 2 ;;
esac

[ -n "$data" ] || data=$(mktemp -d "${TMPDIR:-/tmp}/vigil-ferretdb.XXXXXX")
mkdir -p "$(dirname "$bin")" "$(dirname "$pidfile")" "$data"
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
stop # a stale instance from an earlier run would hold the port

(cd "$root/internal/tools/ferretdb" && go build -buildvcs=false -tags ferretdb_no_postgresql -o "$bin" .) >&2

out=$pidfile.out
log=$pidfile.log
: >"$out"
"$bin" -dir "$data" -listen "127.0.0.1:$port" </dev/null >"$out" 2>"$log" &
echo $! >"$pidfile"

for _ in $(seq 600); do
  if uri=$(grep -m1 '^ready ' "$out"); then
    echo "export VIGIL_TEST_MONGO_URI='${uri#ready }'"
    exit 0
  fi
  kill -0 "$(cat "$pidfile")" 2>/dev/null || break
  sleep 0.1
done
echo "ferretdb.sh: FerretDB not ready; log $log:" >&2
cat "$log" >&2
stop
exit 1
