#!/usr/bin/env bash
# The engine benchmark (docs/benchmarks.md, "Engine"): lethe's unlearning
# methods on Fashion-MNIST scenarios where forgetting is measurable, against
# retraining measured in the same run, plus PyTorch's time for the same
# training recipe.
#
#   bench/engine/run.sh [--scenario NAME]... [--quick] [--no-pytorch]
#                       [--build-dir DIR] [-- ENGINE_BENCH_ARGS...]
#   bench/engine/run.sh --speed N
#
# --speed N: only the training-speed comparison, N rounds of PyTorch then
# lethe (engine_bench --train-only) on both recipes (5,000 images x 80 epochs,
# 60,000 x 8), alternating so that both see the same machine load; appends
# to bench/results/speed.jsonl and prints the medians.
#
# NAME: memorised-random, memorised-cluster, poison, class, certified, sisa
# (default: all six, one process each, so each VmHWM is that scenario's). Builds engine_bench in
# build-core/ (LETHE_BUILD_SERVICE=OFF) when needed. Writes
# bench/results/engine-<scenario>[-quick].{json,log}, pytorch-<scenario>.json
# and engine.svg (closed % against speed-up).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build_dir=$root/build-core
scenarios=()
quick=""
pytorch=1
speed=0
extra=()

die() { echo "run.sh: $*" >&2; exit 1; }

while (($#)); do
  case $1 in
    --scenario) scenarios+=("$2"); shift 2 ;;
    --quick) quick=--quick; shift ;;
    --no-pytorch) pytorch=0; shift ;;
    --speed) speed=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown argument $1" ;;
  esac
done
((${#scenarios[@]})) || scenarios=(memorised-random memorised-cluster poison class certified sisa)

# Both pools (libgomp's and OpenBLAS's) read these when they load.
export OMP_WAIT_POLICY=PASSIVE
threads=2

if [[ ! -f $build_dir/build.ninja ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DLETHE_BUILD_SERVICE=OFF \
    -DLETHE_BUILD_BENCH=ON >/dev/null
fi
ninja -C "$build_dir" -j2 engine_bench >/dev/null
results=$root/bench/results
mkdir -p "$results"

if ((speed)); then
  for ((i = 1; i <= speed; i++)); do
    for s in memorised-random class; do
      case $s in memorised-*) train=5000 epochs=80 ;; *) train=60000 epochs=8 ;; esac
      /usr/bin/python3 "$here/pytorch_baseline.py" --train "$train" \
        --epochs "$epochs" --threads "$threads" | tee -a "$results/speed.jsonl"
      load=$(cut -d' ' -f1 /proc/loadavg)
      "$build_dir/bench/engine/engine_bench" --scenario "$s" --train-only \
        --threads "$threads" --out "$results" >/dev/null
      /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({"framework": "lethe", "train_records": d["train_records"], "epochs": d["epochs"], "threads": d["threads"], "seconds": d["train_seconds"], "test_accuracy": d["test_accuracy"], "load_avg_1m": float(sys.argv[2])}))' \
        "$results/engine-$s-train.json" "$load" | tee -a "$results/speed.jsonl"
    done
  done
  /usr/bin/python3 - "$results/speed.jsonl" "$speed" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][-4 * int(sys.argv[2]):]
for n in sorted({r["train_records"] for r in rows}):
    for fw in ("pytorch", "lethe"):
        t = [r["seconds"] for r in rows if r["train_records"] == n and r["framework"].startswith(fw)]
        ld = [r["load_avg_1m"] for r in rows if r["train_records"] == n and r["framework"].startswith(fw)]
        print(f"{n:6d} images {fw:8s} median {statistics.median(t):6.2f} s of {t} (load {min(ld):.1f}-{max(ld):.1f})")
PY
  exit 0
fi

for s in "${scenarios[@]}"; do
  suffix=${quick:+-quick}
  if ((pytorch)) && [[ $s != certified && $s != sisa ]]; then  # the MLP's reference
    case $s in
      memorised-*) train=5000 epochs=80 ;;
      *) train=60000 epochs=8 ;;
    esac
    [[ -n $quick ]] && case $s in
      memorised-*) train=2000 epochs=20 ;;
      *) train=12000 epochs=2 ;;
    esac
    echo "== pytorch baseline for $s: $train images, $epochs epochs (load $(cut -d' ' -f1 /proc/loadavg))"
    /usr/bin/python3 "$here/pytorch_baseline.py" --train "$train" \
      --epochs "$epochs" --threads "$threads" | tee "$results/pytorch-$s$suffix.json"
  fi
  "$build_dir/bench/engine/engine_bench" --scenario "$s" $quick \
    --threads "$threads" --out "$results" "${extra[@]}" |
    tee "$results/engine-$s$suffix.log"
done
/usr/bin/python3 "$here/plot.py" "$results" "$results/engine${quick:+-quick}.svg"
