#!/usr/bin/env bash
# lethe on an embedded default: a local PostgreSQL under a state folder, the
# server, a worker, Fashion-MNIST with subjects, a trained model, and real
# erasures that end with the subjects' influence and records gone.
#
#   scripts/demo.sh            run, then leave the service running
#   scripts/demo.sh --once     run, then stop everything (the tests use this)
#   scripts/demo.sh --stop     stop what an earlier run left running
#
# State lives in $LETHE_STATE_DIR (default .lethe/): PostgreSQL's cluster,
# the server secret, API keys and logs. A second run reuses all of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state=${LETHE_STATE_DIR:-$root/.lethe}
build=${LETHE_BUILD_DIR:-$root/build}
mode=${1:-}
py=/usr/bin/python3

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

stop_all() {
  for name in worker server; do
    if [[ -f $state/$name.pid ]]; then
      kill -TERM "$(cat "$state/$name.pid")" 2>/dev/null || true
      rm -f "$state/$name.pid"
    fi
  done
  sleep 1
  scripts/pg-local.sh stop "$state/pg" >/dev/null 2>&1 || true
}
if [[ $mode == --stop ]]; then stop_all; echo "stopped"; exit 0; fi

start=$SECONDS
if [[ -z ${LETHE_DEMO_SKIP_BUILD:-} ]]; then  # the test suite builds first
  say "installing packages (skipped when present)"
  scripts/install-deps.sh
  say "building lethe (incremental)"
  cmake -S . -B "$build" -G Ninja >/dev/null
  cmake --build "$build" -j2 --target lethe lethe-worker lethectl
fi

mkdir -p "$state"
chmod 755 "$state"
say "starting PostgreSQL under $state/pg"
scripts/pg-local.sh start "$state/pg"
db_url=$(scripts/pg-local.sh url "$state/pg")
lethe="$build/server/lethe"
[[ -f $state/secret ]] || "$lethe" admin create-secret --secrets-file "$state/secret"
"$lethe" migrate --database-url "$db_url"
if [[ ! -f $state/signing.key ]]; then
  "$lethe" admin create-signing-key --out "$state/signing" --name lethe-demo
fi
if [[ ! -f $state/tls.crt ]]; then
  # The server serves TLS only (plaintext needs --insecure-plaintext): a
  # self-signed certificate for 127.0.0.1, trusted by lethectl below.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 3650 -subj /CN=lethe-demo \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$state/tls.key" -out "$state/tls.crt" 2>/dev/null
fi
if [[ ! -f $state/admin.key ]]; then
  "$lethe" admin create-key --role admin --description demo \
    --database-url "$db_url" > "$state/admin.key"
fi

port_file=$state/server.port
if [[ -f $state/server.pid ]] && kill -0 "$(cat "$state/server.pid")" 2>/dev/null; then
  say "server already running on port $(cat "$port_file")"
else
  port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  echo "$port" > "$port_file"
  say "starting the server on 127.0.0.1:$port (log: $state/server.log)"
  "$lethe" serve --database-url "$db_url" --secrets-file "$state/secret" \
    --public-keys "$state/signing.pub" --listen "127.0.0.1:$port" \
    --tls-cert "$state/tls.crt" --tls-key "$state/tls.key" \
    >>"$state/server.log" 2>&1 &
  echo $! > "$state/server.pid"
fi
if [[ -f $state/worker.pid ]] && kill -0 "$(cat "$state/worker.pid")" 2>/dev/null; then
  say "worker already running"
else
  say "starting a worker (log: $state/worker.log)"
  "$build/worker/lethe-worker" --database-url "$db_url" --poll-seconds 1 \
    --signing-keys "$state/signing.key" --threads 2 >>"$state/worker.log" 2>&1 &
  echo $! > "$state/worker.pid"
fi
if [[ $mode == --once ]]; then trap stop_all EXIT; fi

export LETHE_ADDR="127.0.0.1:$(cat "$port_file")"
export LETHE_API_KEY=$(cat "$state/admin.key")
export LETHE_TLS_CA=$state/tls.crt
ctl="$build/lethectl/lethectl"
for _ in $(seq 50); do "$ctl" dataset list >/dev/null 2>&1 && break; sleep 0.2; done

json() { $py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

dataset=$("$ctl" dataset list --json | $py -c '
import json, sys
for line in sys.stdin:
    for d in json.loads(line).get("datasets", []):
        if d["name"] == "fashion-mnist": print(d["id"])')
fm=/usr/share/datasets/fashion-mnist
if [[ -z $dataset ]]; then
  say "registering Fashion-MNIST: 60,000 training images of 1,200 subjects (50 each)"
  dataset=$("$ctl" dataset create --name fashion-mnist --shape 1,28,28 \
    --type uint8 --classes 10 --description "Debian dataset-fashion-mnist" \
    --json | json 'd["id"]')
  $py -c 'print("\n".join(f"person-{i // 50}" for i in range(60000)))' > "$state/train-subjects.txt"
  $py -c 'print("\n".join(f"visitor-{i // 50}" for i in range(10000)))' > "$state/test-subjects.txt"
  "$ctl" dataset upload "$dataset" --idx-images $fm/train-images-idx3-ubyte.gz \
    --idx-labels $fm/train-labels-idx1-ubyte.gz --subjects "$state/train-subjects.txt" --split train
  "$ctl" dataset upload "$dataset" --idx-images $fm/t10k-images-idx3-ubyte.gz \
    --idx-labels $fm/t10k-labels-idx1-ubyte.gz --subjects "$state/test-subjects.txt" --split test
fi

model=$("$ctl" model list --dataset "$dataset" --json | $py -c '
import json, sys
for line in sys.stdin:
    for m in json.loads(line).get("models", []):
        if m["name"] == "fashion-mlp": print(m["id"])')
if [[ -z $model ]]; then
  say "registering an MLP 784-256-128-10 (the worker trains it: SGD, 12 epochs; fine-tuning runs in rounds of 1, 1, 2 epochs until the calibrated gate accepts, within a quarter of a retrain)"
  echo '{"methods": ["UNLEARNING_METHOD_FINETUNE", "UNLEARNING_METHOD_RETRAIN"],
         "maxTestAccuracyDrop": 1.5, "batchWindowSeconds": 3}' \
    > "$state/policy.json"
  model=$("$ctl" model register --name fashion-mlp --dataset "$dataset" --kind mlp \
    --hidden 256,128 --optimizer sgd --lr 0.05 --momentum 0.9 --epochs 12 \
    --batch-size 128 --seed 1 --schedule linear --policy-json "$state/policy.json" \
    --json | json 'd["id"]')
fi
say "waiting for the model to be trained and ready"
while :; do
  m=$("$ctl" model get "$model" --json)
  st=$(echo "$m" | json 'd["state"]')
  [[ $st == MODEL_STATE_READY ]] && break
  [[ $st == MODEL_STATE_INVALID ]] && { echo "$m"; exit 1; }
  sleep 2
done
"$ctl" model get "$model"

run=$(date +%s)
# Each run erases three subjects not erased before.
n=$(cat "$state/demo-runs" 2>/dev/null || echo 0)
echo $((n + 1)) > "$state/demo-runs"
subjects=("person-$((7 + 3 * n))" "person-$((42 + 3 * n))" "person-$((1000 + 3 * n))")
say "submitting erasures for three subjects: ${subjects[*]}"
ids=()
for subject in "${subjects[@]}"; do
  out=$("$ctl" submit --subject "$subject" --legal-ground gdpr-17-1b \
    --reference "demo-$run" --idempotency-key "demo-$run-$subject" --json)
  ids+=("$(echo "$out" | json 'd["erasure"]["id"]')")
  echo "$subject -> request $(echo "$out" | json 'd["erasure"]["id"]')"
done
say "watching until each request finishes"
for id in "${ids[@]}"; do
  "$ctl" watch "$id" || true
done

say "results"
for id in "${ids[@]}"; do
  e=$("$ctl" get "$id" --json)
  echo "$e" | json '"request %s: %s%s" % (d["id"], d["state"].replace("ERASURE_STATE_", "").lower(), (" (" + d["stateReason"] + ")") if d.get("stateReason") else "")'
done
"$ctl" model versions "$model" --json | $py scripts/demo_report.py

say "certificates, verified offline against the transparency log"
for id in "${ids[@]}"; do
  state_now=$("$ctl" get "$id" --json | json 'd["state"]')
  [[ $state_now == ERASURE_STATE_COMPLETED ]] || continue
  "$ctl" certificate get "$id" --bundle "$state/$id.bundle.json" >/dev/null
  "$ctl" verify "$state/$id.bundle.json" --key "$state/signing.pub"
  echo "  bundle: $state/$id.bundle.json (check it with standard tools: scripts/audit-bundle.sh)"
done

say "done in $((SECONDS - start)) s"
if [[ $mode != --once ]]; then
  cat <<TXT
The service is still running. Query it with lethectl:
  export LETHE_ADDR=$LETHE_ADDR
  export LETHE_API_KEY=\$(cat $state/admin.key)
  export LETHE_TLS_CA=$state/tls.crt
  $ctl list
  $ctl model versions $model
Stop it with: scripts/demo.sh --stop
TXT
fi
