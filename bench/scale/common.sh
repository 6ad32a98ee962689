# Shared by the scale benchmarks (sourced; needs `root` and `build` set):
# start_postgres NAME makes $tmp and starts a durable PostgreSQL there with
# an admin key (LETHE_API_KEY exported for lethectl); start_server [serve
# args...] then starts a lethe server on a free port (LETHE_ADDR exported),
# spooling into $tmp/spool. Both stop, and $tmp goes, on exit. Sets tmp,
# url, server, lethe, ctl; defines sql, json, hwm_mb, now, say.
py=/usr/bin/python3
say() { echo "bench/scale: $*" >&2; }
now() { date +%s.%N; }
json() { $py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# The peak resident memory of process $1 in MB (VmHWM).
hwm_mb() { awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

server=""
scale_cleanup() {
  [[ -n $server ]] && kill -TERM "$server" 2>/dev/null || true
  sleep 1
  "$root/scripts/pg-local.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}

start_postgres() {
  local name=$1
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/lethe-scale-$name.XXXXXX")
  chmod 755 "$tmp"
  trap scale_cleanup EXIT
  "$root/scripts/pg-local.sh" start "$tmp/pg" --durable >/dev/null
  url=$("$root/scripts/pg-local.sh" url "$tmp/pg")
  lethe=$build/server/lethe
  ctl=$build/lethectl/lethectl
  "$lethe" admin create-secret --secrets-file "$tmp/secret" >/dev/null
  "$lethe" migrate --database-url "$url" >/dev/null
  LETHE_API_KEY=$("$lethe" admin create-key --role admin --database-url "$url" 2>/dev/null)
  export LETHE_API_KEY
}

start_server() {
  local port
  port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export LETHE_ADDR=127.0.0.1:$port
  mkdir -p "$tmp/spool"
  "$lethe" serve --database-url "$url" --secrets-file "$tmp/secret" \
    --listen "$LETHE_ADDR" --insecure-plaintext --spool-dir "$tmp/spool" "$@" \
    >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do "$ctl" dataset list >/dev/null 2>&1 && break; sleep 0.1; done
}

sql() { psql "$url" -Atqc "$1"; }
