# The worker's side of bench/scale/artifacts.sh (--worker): sourced by it,
# with its server running and `timed`, `reset_hwm` and `sizes` defined.
fm=${LETHE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
worker=""
stop_worker() {
  [[ -n $worker ]] && kill -TERM "$worker" 2>/dev/null && wait "$worker" 2>/dev/null || true
  worker=""
}
trap 'stop_worker; scale_cleanup' EXIT

say "2,000 Fashion-MNIST records, 20 a subject"
$py - "$tmp" "$fm" <<'PY'
import gzip, struct, sys
out, fm = sys.argv[1], sys.argv[2]
imgs = gzip.open(f"{fm}/train-images-idx3-ubyte.gz").read()[16:16 + 2000 * 784]
labs = gzip.open(f"{fm}/train-labels-idx1-ubyte.gz").read()[8:8 + 2000]
for split, lo, hi in (("train", 0, 1400), ("test", 1400, 2000)):
    with open(f"{out}/{split}-images.idx", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, hi - lo, 28, 28) + imgs[lo * 784:hi * 784])
    with open(f"{out}/{split}-labels.idx", "wb") as f:
        f.write(struct.pack(">II", 0x801, hi - lo) + labs[lo:hi])
    with open(f"{out}/{split}-subjects.txt", "w") as f:
        f.writelines(f"person-{k // 20}\n" for k in range(lo, hi))
PY
people=$("$ctl" dataset create --name people --shape 784 --type uint8 --classes 10 --json \
  | json 'd["id"]')
for split in train test; do
  "$ctl" dataset upload "$people" --idx-images "$tmp/$split-images.idx" \
    --idx-labels "$tmp/$split-labels.idx" --subjects "$tmp/$split-subjects.txt" \
    --split "$split" >/dev/null
done
# Finetune for one epoch, its gate opened wide (the largest margin, 0.5,
# widens each calibrated interval by half the scale; 100 points of
# utility): this measures what moving the model costs, not whether it
# forgets (the model's weights are untrained).
echo '{"methods": ["UNLEARNING_METHOD_FINETUNE"], "maxTestAccuracyDrop": 100,
       "gateMargin": 0.5, "adaptiveBudgetFraction": -1,
       "finetune": {"epochs": 1, "learningRate": 0.01}}' >"$tmp/policy.json"
mkdir -p "$tmp/scratch"

echo "store: $store; PostgreSQL durable (fsync on); $(nproc) cores; the worker's side"
printf '%8s %7s | %8s | %9s %9s | %9s %9s | %9s | %9s %9s | %9s\n' \
  "MiB" "hidden" "reg s" "val s" "val MB" "unl s" "unl MB" "submit s" \
  "wkr MB" "x file" "get srv MB"
person=0
for mib in $sizes; do
  person=$((person + 1))  # each size erases a subject the dataset still has
  hidden=$($py -c "print(round($mib * 2**20 / ((784 + 1 + 10) * 4)))")
  say "$mib MiB: a TorchScript MLP 784-$hidden-10"
  $py - "$hidden" "$tmp/model.pt" <<'PY'
import sys, torch
torch.manual_seed(0)
h = int(sys.argv[1])
m = torch.nn.Sequential(torch.nn.Linear(784, h), torch.nn.ReLU(), torch.nn.Linear(h, 10))
torch.jit.script(m).save(sys.argv[2])
PY
  file_mb=$(($(stat -c %s "$tmp/model.pt") / 1000000))
  say "$mib MiB: register ($file_mb MB)"
  timed "$tmp/reg" "$ctl" model register --name "tm$mib" --dataset "$people" \
    --kind torchscript --artifact "$tmp/model.pt" --optimizer sgd --lr 0.01 \
    --epochs 1 --batch-size 64 --policy-json "$tmp/policy.json" --json
  model=$(json 'd["id"]' <"$tmp/reg.out")
  "$build/worker/lethe-worker" --database-url "$url" --poll-seconds 1 \
    --threads "$(nproc)" --scratch-dir "$tmp/scratch" >"$tmp/worker.log" 2>&1 &
  worker=$!
  while :; do
    st=$("$ctl" model get "$model" --json | json 'd["state"]')
    [[ $st == MODEL_STATE_READY ]] && break
    [[ $st == MODEL_STATE_INVALID ]] && { "$ctl" model get "$model"; exit 1; }
    sleep 0.5
  done
  say "$mib MiB: one erasure request, unlearned by finetune"
  t0=$(now)
  id=$("$ctl" submit --subject "person-$person" --legal-ground gdpr-17-1b \
    --idempotency-key "art-$mib" --json | json 'd["erasure"]["id"]')
  while :; do
    st=$("$ctl" get "$id" --json | json 'd["state"]')
    case $st in *QUEUED|*RUNNING) sleep 0.5 ;; *) break ;; esac
  done
  t1=$(now)
  if [[ $st != *COMPLETED ]]; then
    echo "request $id ended $st" >&2
    "$ctl" get "$id" >&2
    tail -5 "$tmp/worker.log" >&2
    exit 1
  fi
  wkr=$(hwm_mb "$worker")
  stop_worker
  say "$mib MiB: download the new version"
  reset_hwm "$server"
  timed "$tmp/get" "$ctl" model download "$model" --out "$tmp/back.pt"
  get_srv=$(hwm_mb "$server")
  rm -f "$tmp/back.pt" "$tmp/model.pt"
  read -r vs vm us um < <($py - "$tmp/worker.log" <<'PY'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("message") == "engine run":
        runs[d["op"]] = (d["wall_s"], d["peak_rss_mb"])
v, u = runs.get("validate", (0, 0)), runs.get("unlearn", (0, 0))
print(f"{v[0]:.1f} {v[1]} {u[0]:.1f} {u[1]}")
PY
)
  printf '%8s %7s | %8s | %9s %9s | %9s %9s | %9.1f | %9s %9.2f | %9s\n' \
    "$mib" "$hidden" "$(cat "$tmp/reg.s")" "$vs" "$vm" "$us" "$um" \
    "$($py -c "print($t1 - $t0)")" "$wkr" "$($py -c "print($wkr / $file_mb)")" \
    "$get_srv"
done
echo "reg s: lethectl model register; val / unl: the engine process's wall time"
echo "and peak RSS (MB) validating the model and unlearning one subject from it"
echo "(the worker's log); submit s: submit to COMPLETED; wkr MB: lethe-worker's"
echo "peak RSS over both jobs, x file: over the model file's size; get srv MB:"
echo "the server's peak RSS during the new version's download."
