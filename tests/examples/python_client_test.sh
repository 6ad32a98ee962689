#!/usr/bin/env bash
# Runs docs/examples/python/lethe_client.py against a real `lethe serve`
# (over TLS) and `lethe-worker`, on a database of its own, and checks the
# example's exit status and output on the three ways a request ends for a
# product backend: NOTHING_TO_ERASE, CANCELLED and COMPLETED (with its
# certificate).
#
#   python_client_test.sh BUILD_DIR
#
# PostgreSQL: the server named by LETHE_TEST_DATABASE_URL (a database is
# created there and dropped at exit); when unset, a throwaway cluster from
# scripts/pg-local.sh. Python: $LETHE_PYTHON, else /usr/bin/python3, with
# grpcio and grpcio-tools (Debian: python3-grpcio python3-grpc-tools).
# Anything missing fails the test.
set -euo pipefail

build=${1:?usage: python_client_test.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
example=$root/docs/examples/python/lethe_client.py
lethe=$build/server/lethe
worker_bin=$build/worker/lethe-worker
ctl=$build/lethectl/lethectl

fail() { echo "python_client_test: FAIL: $*" >&2; exit 1; }
say() { echo "python_client_test: $*"; }

if [[ -n ${LETHE_PYTHON:-} ]]; then
  py=$LETHE_PYTHON
elif [[ -x /usr/bin/python3 ]]; then
  py=/usr/bin/python3
else
  py=python3
fi
for bin in "$lethe" "$worker_bin" "$ctl"; do
  [[ -x $bin ]] || fail "$bin is missing: build lethe, lethe-worker and lethectl first"
done
command -v psql >/dev/null || fail "psql is missing (package postgresql-client)"
command -v openssl >/dev/null || fail "openssl is missing (package openssl)"
"$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null \
  || fail "$py lacks grpcio or grpcio-tools (Debian: python3-grpcio python3-grpc-tools)"

work=$(mktemp -d "${TMPDIR:-/tmp}/lethe-pyclient-test.XXXXXX")
pg_dir=""
server_pid=""
worker_pid=""
example_pid=""
admin_url=""
db_name=""

stop_process() {  # stop_process PID: TERM, then KILL after 10 s
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  stop_process "$example_pid"
  stop_process "$worker_pid"
  stop_process "$server_pid"
  if ((rc != 0)); then
    for f in server.log worker.log; do
      [[ -s $work/$f ]] && { echo "--- $f (last 40 lines)"; tail -n 40 "$work/$f"; }
    done
  fi
  if [[ -n $db_name ]]; then
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 \
      || echo "python_client_test: could not drop database $db_name" >&2
  fi
  if [[ -n $pg_dir ]]; then
    "$root/scripts/pg-local.sh" stop "$pg_dir" >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# --- PostgreSQL: a database of our own on the test server.
admin_url=${LETHE_TEST_DATABASE_URL:-}
if [[ -z $admin_url ]]; then
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/lethe-pyclient-pg.XXXXXX")
  "$root/scripts/pg-local.sh" start "$pg_dir" >/dev/null
  admin_url=$("$root/scripts/pg-local.sh" url "$pg_dir")
fi
db_name="lethe_pyclient_$$_$RANDOM"
psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db_name" >/dev/null \
  || { db_name=""; fail "cannot create a database on $admin_url"; }
# The same server, our database (URL or key=value form).
db_url=$("$py" - "$admin_url" "$db_name" <<'EOF'
import sys
url, name = sys.argv[1:]
for scheme in ("postgresql://", "postgres://"):
    if url.startswith(scheme):
        rest = url[len(scheme):]
        cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0],
                  default=len(rest))
        query = rest.find("?", cut)
        print(scheme + rest[:cut] + "/" + name + (rest[query:] if query >= 0 else ""))
        break
else:
    print(url + " dbname=" + name)
EOF
)

# --- Secrets, keys, schema.
cd "$work"
"$lethe" migrate --database-url "$db_url" >/dev/null
"$lethe" admin create-secret --secrets-file "$work/secret" >/dev/null
"$lethe" admin create-signing-key --out "$work/signing" 2>/dev/null >/dev/null
admin_key=$("$lethe" admin create-key --role admin --description pyclient-test \
  --database-url "$db_url" 2>/dev/null)
submitter_key=$("$lethe" admin create-key --role submitter --description pyclient-test \
  --database-url "$db_url" 2>/dev/null)
[[ $admin_key == lethe_* && $submitter_key == lethe_* ]] || fail "create-key printed no key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1 \
  || fail "openssl could not make a TLS certificate"

# --- The server, over TLS, on a port the kernel picks (read from its log).
start_server() {  # start_server PORT: sets server_pid and port
  "$lethe" serve --database-url "$db_url" --secrets-file "$work/secret" \
    --listen "127.0.0.1:$1" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
    --public-keys "$work/signing.pub" --shutdown-grace-seconds 1 \
    >>"$work/server.log" 2>&1 &
  server_pid=$!
  local before
  before=$(grep -c '"message":"listening"' "$work/server.log" || true)
  port=""
  for _ in $(seq 300); do
    if (($(grep -c '"message":"listening"' "$work/server.log" || true) > before)); then
      port=$(sed -n 's/.*"message":"listening","port":\([0-9]*\).*/\1/p' "$work/server.log" | tail -n 1)
      break
    fi
    kill -0 "$server_pid" 2>/dev/null || fail "lethe serve exited"
    sleep 0.1
  done
  [[ -n $port ]] || fail "lethe serve did not report its port within 30 s"
}
start_server 0
addr=127.0.0.1:$port
say "server on $addr (TLS)"

lethectl() { "$ctl" --addr "$addr" --tls-ca "$work/tls.crt" --api-key "$admin_key" "$@"; }
json() { "$py" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# --- A tiny dataset (15 subjects: user-0..user-14, four records each) and a
# logistic regression the worker trains; erasures on it retrain it.
"$py" - >"$work/tiny.csv" <<'EOF'
import random
r = random.Random(7)
print("subject_id,label,split,f0,f1,f2,f3")
for i in range(60):
    y = i % 2
    f = [round((0.8 if y else -0.8) + r.gauss(0, 0.5), 3) for _ in range(4)]
    print("user-%d,%d,%s,%s" % (i // 4, y, "test" if i >= 48 else "train",
                                ",".join(map(str, f))))
EOF
dataset=$(lethectl dataset create --name tiny --shape 4 --type float32 --classes 2 \
  --json | json 'd["id"]')
lethectl dataset upload "$dataset" --csv "$work/tiny.csv" >/dev/null
model=$(lethectl model register --name tiny-logreg --dataset "$dataset" --kind logreg \
  --optimizer sgd --lr 0.1 --epochs 5 --batch-size 8 --seed 1 --methods retrain \
  --json | json 'd["id"]')
say "dataset $dataset, model $model"

out=$work/out.txt
run_example() {  # run_example EXPECTED_STATUS ARGS...: runs it, keeps its output in $out
  local expected=$1 status=0
  shift
  "$py" "$example" --addr "$addr" --tls-ca "$work/tls.crt" --timeout 30 \
    --watch-timeout 120 "$@" >"$out" 2>&1 || status=$?
  sed 's/^/    | /' "$out"
  ((status == expected)) || fail "the example exited $status, expected $expected"
}
expect() {  # expect REGEX: a line of the last run's output matches
  grep -Eq -- "$1" "$out" || fail "no output line matches: $1"
}
id_re='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
common_checks() {
  expect "^submit: request $id_re state "
  local id
  id=$(sed -n 's/^submit: request \([0-9a-f-]*\) .*/\1/p' "$out")
  expect "^retry \(same key, same body\): request $id replayed true$"
  expect '^reuse \(same key, other body\): ALREADY_EXISTS$'
  expect '^reuse \(same key, other salt\): ALREADY_EXISTS$'
  expect '^commitment: opens with the salt$'
  expect "^get: request $id state "
  expect '^errors: GetErasure\(unknown id\) -> NOT_FOUND \(do not retry\)$'
  expect '^errors: GetErasure\(malformed id\) -> INVALID_ARGUMENT \(do not retry\)$'
  expect '^errors: SubmitErasure\(no legal ground\) -> INVALID_ARGUMENT \(do not retry\)$'
  expect '^errors: unknown API key -> UNAUTHENTICATED \(do not retry\)$'
}

# 1. A subject no model was trained on: NOTHING_TO_ERASE at once. A
#    submitter key may not list.
say "1. nothing to erase (submitter key)"
run_example 0 --api-key "$submitter_key" --subject nobody-42 --reference TICKET-1
common_checks
expect '^submit: request .* state NOTHING_TO_ERASE replayed false$'
expect '^salt: [0-9a-f]{64}$'
expect '^watch: NOTHING_TO_ERASE '
expect '^list: PERMISSION_DENIED '
expect '^result: NOTHING_TO_ERASE$'

# 2. No worker runs yet, so the task stays unclaimed and can be cancelled;
#    the watch sees QUEUED, then CANCELLED. An admin key pages the list.
say "2. cancelled while queued (admin key)"
run_example 0 --api-key "$admin_key" --subject user-3 --reference TICKET-2 \
  --model "$model" --cancel --page-size 1
common_checks
expect "^submit: request .* state QUEUED replayed false$"
expect "^watch: QUEUED $model=QUEUED$"
expect '^cancel: request .* state CANCELLED$'
expect "^watch: CANCELLED \(cancelled by client\) $model=CANCELLED$"
expect "^get:   model $model task CANCELLED attempts 0 "
expect '^list: 2 request\(s\) in 2 page\(s\) of at most 1$'
expect '^result: CANCELLED$'

# 3. The watch survives a server restart: the replica drains (open streams
#    end UNAVAILABLE), the example reconnects, and sees the request end.
#    Cancelled by someone else, so the example exits 1.
say "3. watch across a server restart"
"$py" "$example" --addr "$addr" --tls-ca "$work/tls.crt" --timeout 30 \
  --watch-timeout 120 --api-key "$submitter_key" --subject user-9 \
  --model "$model" >"$out" 2>&1 &
example_pid=$!
for _ in $(seq 300); do
  grep -q '^watch: QUEUED' "$out" && break
  kill -0 "$example_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^watch: QUEUED' "$out" || { cat "$out"; fail "the example never watched"; }
request=$(sed -n 's/^submit: request \([0-9a-f-]*\) .*/\1/p' "$out")
stop_process "$server_pid"
start_server "$port"
lethectl cancel "$request" >/dev/null
status=0
wait "$example_pid" || status=$?
sed 's/^/    | /' "$out"
((status == 1)) || fail "the example exited $status, expected 1 (cancelled by another client)"
common_checks
expect '^watch: (UNAVAILABLE|CANCELLED); reconnecting '
expect "^watch: CANCELLED \(cancelled by client\) $model=CANCELLED$"
expect '^result: CANCELLED$'

# 4. With a worker (it trains the model first): QUEUED -> RUNNING ->
#    COMPLETED, and a signed certificate. The request is queued before the
#    model is trained, so the training leaves the subject out (its erasure
#    is under way) and the task completes on version 1 with method none,
#    or on a later version if the model was trained first.
say "4. completed (submitter key, a worker running)"
"$worker_bin" --database-url "$db_url" --device cpu --threads 1 --poll-seconds 1 \
  --signing-keys "$work/signing.key" >"$work/worker.log" 2>&1 &
worker_pid=$!
run_example 0 --api-key "$submitter_key" --subject user-5 --reference TICKET-3 \
  --idempotency-key "ticket-3-user-5"
common_checks
expect '^submit: request .* state QUEUED replayed false$'
expect '^watch: COMPLETED '
expect "^get:   model $model task DONE attempts [0-9]+ version [1-9]"
expect "^certificate: leaf 0 key [0-9a-f]{64} models $model envelope [0-9]+ bytes$"
expect '^result: COMPLETED$'
first_id=$(sed -n 's/^submit: request \([0-9a-f-]*\) .*/\1/p' "$out")
first_salt=$(sed -n 's/^salt: \([0-9a-f]\{64\}\)$/\1/p' "$out")
[[ -n $first_salt ]] || fail "the example printed no salt"

# 5. The same idempotency key and salt again (a backend that lost the
#    answer): the original request comes back, and the client's salt still
#    opens its commitment.
say "5. resubmitted with the same idempotency key and salt"
run_example 0 --api-key "$submitter_key" --subject user-5 --reference TICKET-3 \
  --idempotency-key "ticket-3-user-5" --subject-salt "$first_salt"
common_checks
expect "^submit: request $first_id state COMPLETED replayed true$"
expect "^salt: $first_salt$"
expect '^result: COMPLETED$'

# 6. A call that fails for good exits 3: the server is gone.
say "6. server stopped"
stop_process "$server_pid"
server_pid=""
run_example 3 --api-key "$submitter_key" --subject user-6 --timeout 2
grep -q 'UNAVAILABLE, retrying' "$out" || fail "no retry on UNAVAILABLE"

say "PASS"
