#!/usr/bin/env bash
# The whole scale benchmark (issue 19; docs/benchmarks.md, "Scale") in one
# command: records (uploads against COPY, the database's size, the subject
# lookup, SubmitErasure in steady state, GetDataset), the worker at each
# size, models per dataset, and model files through the server and through
# the worker; each part's table goes to OUT/PART.txt as it prints it. Then
# the plots of docs/figures/scale.csv (the figures docs/benchmarks.md
# reports, transcribed from such runs) are redrawn into docs/figures.
#
#   bench/scale/run.sh [--out DIR] [--sizes "70000 1000000"] [--quick]
#                      [--build-dir DIR]
#
# --quick: every part once at its smallest size (70k records, 1 and 2
# models, 64 MiB model files): a few minutes, to check the benchmark runs.
# --sizes applies to the records and worker parts (add 10000000 for 10M:
# about 50 GB of disk and an hour more on two cores). Defaults take about
# an hour on two cores. Each part starts its own durable PostgreSQL and
# servers in temporary folders and stops them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/build/bench-scale
sizes="70000 1000000"
models="1 4 8"
mib="64 256 512 1024"
mib_small="64 512"
build_args=()
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --quick) sizes=70000; models=1; mib=64; mib_small=64; shift ;;
    --build-dir) build_args=(--build-dir "$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
part() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  "$@" "${build_args[@]}" | tee "$out/$name.txt"
}
part records "$here/records.sh" --sizes "$sizes"
part worker "$here/worker.sh" --sizes "$sizes"
for m in $models; do
  part "models-$m" "$here/worker.sh" --sizes 70000 --models "$m"
done
part artifacts "$here/artifacts.sh" --sizes-mib "$mib"
part artifacts-dir "$here/artifacts.sh" --sizes-mib "$mib_small" --store dir
part artifacts-worker "$here/artifacts.sh" --worker --sizes-mib "$mib_small"
/usr/bin/python3 "$here/plot.py" "$root/docs/figures/scale.csv" "$root/docs/figures"
echo "tables in $out; plots of docs/figures/scale.csv in docs/figures" >&2
