#!/usr/bin/env bash
# A local PostgreSQL 15 cluster under one folder, for tests, CI, the demo and
# the intake benchmark.
#
#   scripts/pg-local.sh start   DIR [--port N] [--durable]
#   scripts/pg-local.sh stop    DIR
#   scripts/pg-local.sh restart DIR [--durable]  stop, then start on the same port
#   scripts/pg-local.sh status  DIR    exit 0 when running, 3 when not
#   scripts/pg-local.sh url     DIR    postgresql://lethe@127.0.0.1:PORT/lethe
#
# `start` creates the cluster on first use (superuser role `lethe`, database
# `lethe`, trust authentication, loopback only) and reuses it afterwards: the
# port is remembered in DIR/port, so a second `start` is fast and `url` stays
# stable. Without --port the remembered port is reused unless another
# process listens on it; connections of the previous run that linger in
# TIME_WAIT or FIN_WAIT do not count (PostgreSQL binds with SO_REUSEADDR), so
# clients that stay up across a stop and a start reconnect to the same URL.
# Only on first use, or when the port really is taken, a free one is picked.
# `restart` keeps the port (it fails rather than move) and the cluster's
# --durable setting (--durable turns it on). Without --durable fsync,
# synchronous_commit and full_page_writes are off for test speed: a crash may
# lose or corrupt data. --durable keeps PostgreSQL's defaults
# (synchronous_commit on).
#
# DIR may contain spaces and commas. The unix socket lives in DIR/socket
# unless that path is too long for a socket address (107 bytes); then the
# cluster listens on TCP only.
#
# initdb refuses to run as root: as root the server runs as the `postgres`
# user and DIR is chowned to it.
#
# Layout: DIR/data (PGDATA), DIR/socket (unix socket), DIR/port,
# DIR/postgres.log.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
prog=$(basename "$0")

die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

usage() {
  sed -n '5,9p' "$0" | sed 's/^#   //' >&2
  exit 2
}

(($# >= 2)) || usage
cmd=$1
dir=$2
shift 2
port=""
durable=0
while (($#)); do
  case $1 in
    --port) (($# >= 2)) || die "--port needs a number"; port=$2; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    --durable) durable=1; shift ;;
    *) die "unknown option '$1'" ;;
  esac
done
if [[ -n $port ]] && ! [[ $port =~ ^[0-9]+$ && $port -ge 1024 && $port -le 65535 ]]; then
  die "--port must be a number in 1024..65535, got '$port'"
fi
[[ -x $PG_BIN/initdb ]] || die "$PG_BIN/initdb not found; run scripts/install-deps.sh (package postgresql)"

if [[ $cmd == start ]]; then
  mkdir -p "$dir"
elif [[ ! -d $dir ]]; then
  [[ $cmd == stop ]] && { say "not running (no folder $dir)"; exit 0; }
  [[ $cmd == status ]] && { echo "no cluster in $dir"; exit 3; }
  die "no cluster in $dir; run '$prog start $dir' first"
fi
dir=$(cd "$dir" && pwd)
data=$dir/data
sock=$dir/socket
log=$dir/postgres.log

# Runs a PostgreSQL tool as the cluster's owner, in DIR (the caller's working
# directory may be unreadable to `postgres`).
owner=$(id -un)
if [[ $(id -u) -eq 0 ]]; then
  owner=postgres
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (package postgresql)"
fi
as_owner() {
  if [[ $owner == "$(id -un)" ]]; then
    (cd "$dir" && "$@")
  else
    (cd "$dir" && runuser -u "$owner" -- "$@")
  fi
}

# port_free N: PostgreSQL could listen on 127.0.0.1:N. Binds and listens as
# PostgreSQL does, with SO_REUSEADDR, so only a listening socket (or one
# bound without SO_REUSEADDR) makes the port taken, not closed connections in
# TIME_WAIT or FIN_WAIT.
port_free() {
  python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError:
    sys.exit(1)
EOF
}

pick_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

running() { [[ -f $data/PG_VERSION ]] && as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; }

remembered_port() { [[ -f $dir/port ]] && cat "$dir/port"; }

url() { echo "postgresql://lethe@127.0.0.1:$(remembered_port)/lethe"; }

# socket_dirs_conf PORT: the value of unix_socket_directories for DIR/socket,
# quoted for the configuration file. The setting is a comma-separated list:
# an entry with a comma must be double-quoted (a double quote inside is
# doubled; a backslash does not escape a comma, PostgreSQL 15 checked), and
# the file's single-quoted string doubles backslashes and single quotes.
# Empty (TCP only) when the socket's path would not fit a sockaddr_un.
socket_dirs_conf() {
  local LC_ALL=C
  local socket_path="$sock/.s.PGSQL.$1"
  if ((${#socket_path} > 107)); then
    say "$sock is too long for a unix socket path; TCP only"
    echo "''"
    return
  fi
  local v=${sock//\"/\"\"}
  v="\"$v\""
  v=${v//\\/\\\\}
  v=${v//\'/\'\'}
  echo "'$v'"
}

# Settings applied at every start; postgresql.conf includes this file.
write_conf() {
  local p=$1 dirs
  dirs=$(socket_dirs_conf "$p")
  {
    echo "# Written by scripts/pg-local.sh at every start; edits are lost."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $p"
    echo "unix_socket_directories = $dirs"
    echo "max_connections = 200"
    if ((durable)); then
      echo "# --durable: PostgreSQL's defaults for fsync and commits."
    else
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } >"$data/lethe.conf"
  chown "$owner" "$data/lethe.conf"
}

init_cluster() {
  say "creating a cluster in $data"
  [[ $owner == "$(id -un)" ]] || chown "$owner:" "$dir"
  as_owner test -w "$dir" \
    || die "user '$owner' cannot write $dir (a parent folder may be closed to it); pick another DIR"
  as_owner "$PG_BIN/initdb" -D "$data" -U lethe -A trust -E UTF8 --locale=C \
    --no-sync --no-instructions >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed (log above)"; }
  echo "include_if_exists = 'lethe.conf'" >>"$data/postgresql.conf"
}

start() {
  [[ -f $data/PG_VERSION ]] || init_cluster
  [[ $owner == "$(id -un)" ]] || chown "$owner:" "$dir"
  mkdir -p "$sock"
  chown "$owner:" "$sock"
  if running; then
    local p
    p=$(remembered_port)
    [[ -z $port || $port == "$p" ]] \
      || die "already running on port $p; stop it first to move it to port $port"
    local was_durable=1
    grep -q '^fsync = off' "$data/lethe.conf" 2>/dev/null && was_durable=0
    ((was_durable == durable)) \
      || die "already running $( ((was_durable)) && echo with || echo without) --durable; stop it first to change that"
    say "already running on port $p"
  else
    local p=$port
    if [[ -z $p ]]; then
      p=$(remembered_port || true)
      if [[ -n $p ]] && ! port_free "$p"; then
        say "remembered port $p is taken; picking another"
        p=""
      fi
      [[ -n $p ]] || p=$(pick_port)
    elif ! port_free "$p"; then
      die "port $p is in use; pick another with --port or leave it out"
    fi
    echo "$p" >"$dir/port"
    write_conf "$p"
    touch "$log" && chown "$owner:" "$log"
    local mode="fast, not crash-safe"
    ((durable)) && mode="durable"
    say "starting PostgreSQL on 127.0.0.1:$p ($mode), log $log"
    as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$log" >&2; die "PostgreSQL did not start (log tail above)"; }
  fi
  local p
  p=$(remembered_port)
  for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p "$p" -U lethe -d postgres && break
    sleep 0.1
  done
  pg_isready -q -h 127.0.0.1 -p "$p" -U lethe -d postgres || die "PostgreSQL on port $p is not ready after 10 s"
  local exists
  exists=$("$PG_BIN/psql" -X -h 127.0.0.1 -p "$p" -U lethe -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'lethe'")
  if [[ $exists != 1 ]]; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$p" -U lethe lethe
  fi
  say "ready: $(url)"
}

stop() {
  if ! running; then
    say "not running ($dir)"
    return 0
  fi
  as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  say "stopped ($dir)"
}

# Stops the cluster and starts it on its remembered port: an explicit port
# makes start fail, rather than move, if another process took it meanwhile.
restart() {
  [[ -z $port ]] || die "restart keeps the port; use stop, then start --port N, to move it"
  [[ -f $data/PG_VERSION ]] || die "no cluster in $dir; run '$prog start $dir' first"
  if [[ -f $data/lethe.conf ]] && ! grep -q '^fsync = off' "$data/lethe.conf"; then
    durable=1
  fi
  port=$(remembered_port || true)
  stop
  start
}

status() {
  if running; then
    echo "running on 127.0.0.1:$(remembered_port): $(url)"
  elif [[ -f $data/PG_VERSION ]]; then
    echo "stopped (cluster in $data)"
    exit 3
  else
    echo "no cluster in $dir"
    exit 3
  fi
}

case $cmd in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  status) status ;;
  url)
    [[ -f $dir/port ]] || die "no cluster in $dir; run '$prog start $dir' first"
    url
    ;;
  *) usage ;;
esac
