#!/usr/bin/env bash
# The artifact part of the scale benchmark (issue 19; docs/benchmarks.md,
# "Artifacts"): registers and downloads model files of growing size through
# a lethe server on a durable PostgreSQL (fsync on), with lethectl, and
# reports for each size the time of each, the server's peak RSS during each
# (VmHWM, reset before each step by /proc/PID/clear_refs), lethectl's peak
# RSS, and the baseline of the same run: writing the same bytes to a file
# on the same disk with fsync (dd conv=fsync), and reading them back.
#
#   bench/scale/artifacts.sh [--sizes-mib "64 256 512"] [--store pg|dir]
#                            [--worker] [--build-dir DIR]
#
# --store dir keeps the artifacts in a directory (--artifact-dir) instead
# of PostgreSQL. The files are random bytes: the store compresses nothing.
#
# --worker measures the worker's side instead: for each size, a real
# TorchScript MLP 784-H-10 with H chosen to make a file of that size
# (python3-torch writes it) is registered on 2,000 Fashion-MNIST records (20
# a subject, 600 in the test split), a lethe-worker (sandboxed engine)
# validates it, and one erasure request is unlearned from it by finetune
# (1 epoch, lr 0.01, its gate opened wide: the cost is measured, not the
# forgetting); then the new version is downloaded. Reported: the worker's
# peak RSS over both jobs (VmHWM), the engine process's peak RSS and wall
# time for each (the worker's log), submit to COMPLETED, the server's peak
# during the download of the new version.
#
# Needs a build with lethe, lethectl (and lethe-worker, lethe-engine for
# --worker); starts its own PostgreSQL and server in a temporary folder and
# stops them on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build
sizes="64 256 512"
store=pg
worker_side=0
while (($#)); do
  case $1 in
    --sizes-mib) sizes=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --worker) worker_side=1; shift ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "artifacts.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $store == pg || $store == dir ]] || { echo "artifacts.sh: --store pg|dir" >&2; exit 2; }
source "$here/common.sh"
start_postgres artifacts
store_args=()
[[ $store == dir ]] && store_args=(--artifact-dir "$tmp/artifacts")
start_server --max-artifact-bytes $((4 << 30)) "${store_args[@]}"
dataset=$("$ctl" dataset create --name models --shape 1 --type uint8 --classes 2 --json \
  | json 'd["id"]')

reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
# `timed OUT_PREFIX cmd...`: runs cmd under /usr/bin/time, writes
# OUT_PREFIX.s (seconds) and OUT_PREFIX.rss (its peak RSS, MB).
timed() {
  local out=$1 t0 t1
  shift
  t0=$(now)
  /usr/bin/time -f '%M' -o "$out.time" "$@" >"$out.out"
  t1=$(now)
  $py -c "print(f'{$t1 - $t0:.2f}')" >"$out.s"
  echo $(($(cat "$out.time") / 1024)) >"$out.rss"
}

if ((worker_side)); then
  source "$here/artifacts_worker.sh"
  exit 0
fi

echo "store: $store; PostgreSQL durable (fsync on); $(nproc) cores"
printf '%8s | %9s %9s %9s %9s | %9s %9s %9s | %9s %9s\n' \
  "MiB" "reg s" "reg MB/s" "srv MB" "ctl MB" "get s" "get MB/s" "srv MB" \
  "dd w MB/s" "dd r MB/s"
for mib in $sizes; do
  say "$mib MiB: making the file"
  head -c $((mib << 20)) /dev/urandom >"$tmp/model.pt"
  say "$mib MiB: baseline (dd with fsync, then read back)"
  sync
  t0=$(now)
  dd if="$tmp/model.pt" of="$tmp/copy.pt" bs=1M conv=fsync status=none
  t1=$(now)
  dd_w=$($py -c "print(f'{$mib / ($t1 - $t0):.0f}')")
  t0=$(now)
  dd if="$tmp/copy.pt" of=/dev/null bs=1M status=none
  t1=$(now)
  dd_r=$($py -c "print(f'{$mib / ($t1 - $t0):.0f}')")
  rm -f "$tmp/copy.pt"

  say "$mib MiB: register"
  reset_hwm "$server"
  timed "$tmp/reg" "$ctl" model register --name "m$mib" --dataset "$dataset" \
    --kind torchscript --artifact "$tmp/model.pt" --optimizer adam --lr 0.001 \
    --epochs 1 --batch-size 32 --json
  reg_srv=$(hwm_mb "$server")
  model=$(json 'd["id"]' <"$tmp/reg.out")
  say "$mib MiB: download"
  reset_hwm "$server"
  timed "$tmp/get" "$ctl" model download "$model" --out "$tmp/back.pt"
  get_srv=$(hwm_mb "$server")
  cmp -s "$tmp/model.pt" "$tmp/back.pt" || { say "downloaded bytes differ"; exit 1; }
  rm -f "$tmp/back.pt"
  printf '%8s | %9s %9.0f %9s %9s | %9s %9.0f %9s | %9s %9s\n' \
    "$mib" "$(cat "$tmp/reg.s")" "$($py -c "print($mib / $(cat "$tmp/reg.s"))")" \
    "$reg_srv" "$(cat "$tmp/reg.rss")" \
    "$(cat "$tmp/get.s")" "$($py -c "print($mib / $(cat "$tmp/get.s"))")" "$get_srv" \
    "$dd_w" "$dd_r"
done
echo "reg/get: lethectl model register/download through the server; srv MB: the"
echo "server's peak RSS during that step; ctl MB: lethectl's peak RSS (register)."
