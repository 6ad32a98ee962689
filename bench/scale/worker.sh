#!/usr/bin/env bash
# The worker part of the scale benchmark (issue 19; docs/benchmarks.md,
# "Worker"): for each size, a dataset of Fashion-MNIST's 70,000 images
# repeated to that many records (784 bytes each, 20 a subject) is uploaded,
# and --models models (default 2), MLPs 784-256-128-10 that the worker
# trains itself (SGD, --epochs), are registered on it: alternately one that
# unlearns by finetune (5 epochs over the retained records, its gate opened
# wide: the cost is measured, not the forgetting) and one by retrain. Then
# one erasure request is unlearned from all of them. For each engine run
# (the trainings, the unlearnings) it reports what the worker's log says:
# the load phase (the training set spooled from PostgreSQL to the scratch
# file, and the model read), the engine process's wall time and peak RSS;
# then the request's time from submit to COMPLETED and the worker process's
# own peak RSS (VmHWM). The raw size of the training set (records x 784
# bytes) is the yardstick: issue 19's target is engine and worker peak RSS
# at most 2x of it at 1M records.
#
#   bench/scale/worker.sh [--sizes "70000 1000000"] [--epochs 12]
#                         [--models 2] [--build-dir DIR]
#
# Each size gets a fresh database. Durable PostgreSQL (fsync on); the worker
# runs with its default sandboxed engine, --threads $(nproc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build
sizes="70000 1000000"
epochs=12
nmodels=2
while (($#)); do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --models) nmodels=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "worker.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
fm=${LETHE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
source "$here/common.sh"

worker=""
stop_worker() {
  [[ -n $worker ]] && kill -TERM "$worker" 2>/dev/null && wait "$worker" 2>/dev/null || true
  worker=""
}

# wait_state ID: polls the request until it is no longer queued or running.
wait_state() {
  local st
  while :; do
    st=$("$ctl" get "$1" --json | json 'd["state"]')
    case $st in *QUEUED|*RUNNING|*PENDING*) sleep 0.5 ;; *) echo "$st"; return ;; esac
  done
}

echo "PostgreSQL durable (fsync on); $(nproc) cores; Fashion-MNIST tiled to each size, 784 bytes a record, 20 a subject; MLP 784-256-128-10, $epochs epochs"
printf '%9s %7s | %-7s %-9s | %7s %9s %9s %6s | %6s\n' \
  "records" "raw MB" "run" "method" "load s" "engine s" "engine MB" "x raw" "wkr MB"
for n in $sizes; do
  start_postgres "worker-$n"
  # 10M records go up as one upload a split: the server's limits raised.
  start_server --max-upload-bytes $((16 << 30)) --max-spooled-bytes $((20 << 30))
  say "$n records: making the files"
  $py - "$n" "$tmp" "$fm" <<'PY'
import gzip, struct, sys
n, out, fm = int(sys.argv[1]), sys.argv[2], sys.argv[3]
imgs = gzip.open(f"{fm}/train-images-idx3-ubyte.gz").read()[16:] + \
       gzip.open(f"{fm}/t10k-images-idx3-ubyte.gz").read()[16:]
labs = gzip.open(f"{fm}/train-labels-idx1-ubyte.gz").read()[8:] + \
       gzip.open(f"{fm}/t10k-labels-idx1-ubyte.gz").read()[8:]
base = len(labs)
# One record in seven is a test record.
ntest = n // 7
for split, lo, hi in (("train", 0, n - ntest), ("test", n - ntest, n)):
    with open(f"{out}/{split}-images.idx", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, hi - lo, 28, 28))
        for i in range(lo, hi, 10000):
            j = min(hi, i + 10000)
            f.write(b"".join(imgs[(k % base) * 784:(k % base + 1) * 784] for k in range(i, j)))
    with open(f"{out}/{split}-labels.idx", "wb") as f:
        f.write(struct.pack(">II", 0x801, hi - lo) + bytes(labs[k % base] for k in range(lo, hi)))
    with open(f"{out}/{split}-subjects.txt", "w") as f:
        f.writelines(f"person-{k // 20}\n" for k in range(lo, hi))
PY
  dataset=$("$ctl" dataset create --name "worker-$n" --shape 1,28,28 --type uint8 \
    --classes 10 --json | json 'd["id"]')
  for split in train test; do
    "$ctl" dataset upload "$dataset" --idx-images "$tmp/$split-images.idx" \
      --idx-labels "$tmp/$split-labels.idx" --subjects "$tmp/$split-subjects.txt" \
      --split "$split" >/dev/null
  done
  rm -f "$tmp"/*.idx "$tmp"/*-subjects.txt
  say "$n records: $nmodels models on the dataset (finetune, retrain, ...); the worker trains them"
  # finetune's gate opened wide (the largest equivalence margin, 0.5, and
  # 100 points of utility; no adaptive rounds): this measures what a run
  # costs, not whether it forgets (docs/benchmarks.md, "Engine", has that).
  echo '{"methods": ["UNLEARNING_METHOD_FINETUNE"], "maxTestAccuracyDrop": 100,
         "gateMargin": 0.5, "adaptiveBudgetFraction": -1}' >"$tmp/finetune.json"
  echo '{"methods": ["UNLEARNING_METHOD_RETRAIN"]}' >"$tmp/retrain.json"
  models=()
  for ((i = 0; i < nmodels; i++)); do
    method=finetune
    ((i % 2)) && method=retrain
    models+=("$("$ctl" model register --name "mlp-$method-$i" --dataset "$dataset" \
      --kind mlp --hidden 256,128 --optimizer sgd --lr 0.05 --momentum 0.9 \
      --epochs "$epochs" --batch-size 128 --seed 1 --schedule linear \
      --policy-json "$tmp/$method.json" --json | json 'd["id"]')")
  done
  mkdir -p "$tmp/scratch"
  scratch=()
  # A build from before the training set was spooled has no --scratch-dir.
  if "$build/worker/lethe-worker" --help 2>&1 | grep -q scratch-dir; then
    scratch=(--scratch-dir "$tmp/scratch")
  fi
  "$build/worker/lethe-worker" --database-url "$url" --poll-seconds 1 \
    --threads "$(nproc)" "${scratch[@]}" >"$tmp/worker.log" 2>&1 &
  worker=$!
  # Every engine process's peak RSS and lifetime, polled (a build without
  # the worker's "engine run" log line is measured the same way); the last
  # fraction of a second of a process may be missed.
  (while kill -0 "$worker" 2>/dev/null; do
     for p in $(pgrep -x lethe-engine); do
       awk -v p="$p" -v t="$(date +%s.%N)" '/VmHWM/ { print p, t, $2 }' \
         "/proc/$p/status" 2>/dev/null || true  # it may have exited
     done
     sleep 0.1
   done) >"$tmp/engine.poll" &
  for model in "${models[@]}"; do
    while :; do
      st=$("$ctl" model get "$model" --json | json 'd["state"]')
      [[ $st == MODEL_STATE_READY ]] && break
      [[ $st == MODEL_STATE_INVALID ]] && { "$ctl" model get "$model"; exit 1; }
      sleep 1
    done
  done
  say "$n records: one erasure request, unlearned from all $nmodels models"
  t0=$(now)
  id=$("$ctl" submit --subject person-1000 --legal-ground gdpr-17-1b \
    --idempotency-key "bench-$n" --json | json 'd["erasure"]["id"]')
  st=$(wait_state "$id")
  t1=$(now)
  [[ $st == *COMPLETED ]] || { echo "request $id ended $st" >&2; tail -5 "$tmp/worker.log" >&2; exit 1; }
  wkr=$(hwm_mb "$worker")
  [[ -n ${LETHE_BENCH_KEEP_LOG:-} ]] && cp "$tmp/worker.log" "$LETHE_BENCH_KEEP_LOG"
  stop_worker
  # One engine process a job or batch, one at a time (--concurrency 1), in
  # the order of the log's lines; the log's own figure where it has one.
  $py - "$tmp/worker.log" "$tmp/engine.poll" "$n" "$wkr" <<'PY'
import json, sys
path, poll, n, wkr = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
raw = n * 784 / 1e6
procs = {}
for line in open(poll):
    pid, t, kb = line.split()
    p = procs.setdefault(pid, [float(t), float(t), 0])
    p[1] = float(t)
    p[2] = max(p[2], int(kb))
runs = sorted(procs.values())
# The worker's start-up probe (lethe-engine --probe) is an engine process
# that serves no job.
if runs and len(runs) > sum(1 for l in open(path) if '"model trained"' in l
                            or '"batch published"' in l):
    runs = runs[1:]
logged, done = [], []
for line in open(path):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("message") == "engine run":
        logged.append(d)
    elif d.get("message") in ("model trained", "batch published"):
        done.append(d)
for i, d in enumerate(done):
    run = "train" if d["message"] == "model trained" else "unlearn"
    load = d.get("load_seconds")
    if i < len(logged) and len(logged) == len(done):
        secs, mb = logged[i]["wall_s"], logged[i]["peak_rss_mb"]
    elif i < len(runs):
        secs, mb = runs[i][1] - runs[i][0], runs[i][2] // 1024
    else:
        secs, mb = float("nan"), 0
    print(f"{n:9d} {raw:7.0f} | {run:<7} {d.get('method', '-'):<9} | "
          f"{'-' if load is None else format(load, '.1f'):>7} "
          f"{secs:9.1f} {mb:9d} {mb / raw:6.2f} | {wkr:>6}")
PY
  printf '%9s %7s | %-7s %-9s | submit to COMPLETED (%d models): %.1f s\n' \
    "$n" "$((n * 784 / 1000000))" "request" "-" "$nmodels" "$($py -c "print($t1 - $t0)")"
  scale_cleanup
  trap - EXIT
done
echo "load s: the worker's load phase (training set spooled from PostgreSQL to its scratch"
echo "file, model read); engine s / MB: the sandboxed engine process's wall time and peak"
echo "RSS, from the worker's log; x raw: engine MB over the raw training set (records x 784"
echo "bytes); wkr MB: lethe-worker's own peak RSS (VmHWM) over the size's runs."
