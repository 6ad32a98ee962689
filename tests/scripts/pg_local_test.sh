#!/usr/bin/env bash
# scripts/pg-local.sh in a state folder whose path holds a comma and a space
# (unix_socket_directories is a comma-separated list): the cluster starts
# with its socket there; `restart` keeps the port while a client holds a
# connection open (its server side lingers in FIN_WAIT after the stop, which
# must not count as the port being taken) and new connections work; a port
# another process really listens on makes `restart` fail and `start` move.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pg_local=$root/scripts/pg-local.sh
psql=/usr/lib/postgresql/15/bin/psql

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lethe pg,local.XXXXXX")
chmod 755 "$tmp"  # as root, the cluster runs as `postgres`
dir="$tmp/state, with space"
pids=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$pg_local" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
query() { "$psql" -X -h 127.0.0.1 -p "$1" -U lethe -d lethe -Atc "$2"; }

"$pg_local" start "$dir"
port=$(cat "$dir/port")
[[ -S $dir/socket/.s.PGSQL.$port ]] || fail "no unix socket in '$dir/socket'"
[[ $(query "$port" 'SHOW unix_socket_directories') == "\"$dir/socket\"" ]] \
  || fail "unix_socket_directories is '$(query "$port" 'SHOW unix_socket_directories')'"

# A client that keeps its connection open across the restart.
mkfifo "$tmp/client-input"
PGAPPNAME=holder "$psql" -X -h 127.0.0.1 -p "$port" -U lethe -d lethe \
  <"$tmp/client-input" >/dev/null 2>&1 &
pids+=($!)
exec 3>"$tmp/client-input"
for _ in $(seq 50); do
  [[ $(query "$port" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder'") == 1 ]] && break
  sleep 0.1
done
[[ $(query "$port" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder'") == 1 ]] \
  || fail "the holding client did not connect"

"$pg_local" restart "$dir"
[[ $(cat "$dir/port") == "$port" ]] || fail "restart moved the port from $port to $(cat "$dir/port")"
[[ $("$pg_local" url "$dir") == "postgresql://lethe@127.0.0.1:$port/lethe" ]] || fail "url changed"
[[ $(query "$port" 'SELECT 41 + 1') == 42 ]] || fail "no new connection after restart"

# stop and start (no --port) keep it too.
"$pg_local" stop "$dir"
"$pg_local" start "$dir"
[[ $(cat "$dir/port") == "$port" ]] || fail "stop/start moved the port from $port to $(cat "$dir/port")"
[[ $(query "$port" 'SELECT 1') == 1 ]] || fail "no connection after stop/start"

# Another process listening on the port: restart refuses to move, start moves.
"$pg_local" stop "$dir"
python3 - "$port" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
time.sleep(120)
PY
pids+=($!)
for _ in $(seq 50); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null && break
  sleep 0.1
done
if "$pg_local" restart "$dir" 2>"$tmp/restart.err"; then
  fail "restart succeeded although port $port is taken"
fi
grep -q "port $port is in use" "$tmp/restart.err" || { cat "$tmp/restart.err" >&2; fail "restart's error does not name the port"; }
"$pg_local" start "$dir"
moved=$(cat "$dir/port")
[[ $moved != "$port" ]] || fail "start kept port $port although another process listens on it"
[[ $(query "$moved" 'SELECT 1') == 1 ]] || fail "no connection on the new port $moved"
echo "PASS: port $port kept across restart with a client connected; moved to $moved when taken"
