#!/usr/bin/env bash
# The records part of the scale benchmark (issue 19; docs/benchmarks.md,
# "Records"): for each size, a synthetic dataset of 784-byte records (20 a
# subject) is uploaded through a lethe server with lethectl (IDX files, as
# Fashion-MNIST ships), and the same number of rows is loaded by
# PostgreSQL's own COPY into the same table in the same run (the baseline).
# Reports records/s of each and their ratio, the server's and lethectl's
# peak RSS during the upload, the database's bytes per record (table and
# indexes), and the subject lookup that SubmitErasure runs (an index probe
# of records by subject key: pgbench, 1 client, 5 s) as p50/p99 at that
# size, the bare latency of a durable one-row commit (pgbench, 8 clients)
# and SubmitErasure itself through the server at that size (intake_load,
# 8 calls in flight, 10 s, subjects of the newest upload, one model on its
# dataset so that nothing is deleted at submission; both after VACUUM
# ANALYZE and CHECKPOINT, in steady state), and how long `lethectl
# dataset get` takes (it counts the dataset's records and distinct
# subjects).
#
#   bench/scale/records.sh [--sizes "70000 1000000"] [--build-dir DIR]
#
# Sizes accumulate: the table holds every earlier size's rows (both the
# upload's and COPY's) when the next is measured. Durable PostgreSQL (fsync
# on). Needs a build with lethe and lethectl, and pgbench; starts its own
# PostgreSQL and server in a temporary folder and stops them on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build
sizes="70000 1000000"
while (($#)); do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "records.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
source "$here/common.sh"
start_postgres records
# One submitter key drives the intake load: no per-key rate limit. Each
# size is one upload: the server's limits raised to let 10M records
# (7.8 GB of features) through as one (a client could also split them).
start_server --rate-limit-per-key 0 --max-upload-bytes $((16 << 30)) \
  --max-spooled-bytes $((20 << 30))
submitter=$("$lethe" admin create-key --role submitter --description scale-bench \
  --database-url "$url" 2>/dev/null)
load=$build/bench/intake/intake_load

echo "PostgreSQL durable (fsync on); $(nproc) cores; 784-byte records, 20 a subject"
printf '%9s | %10s %10s %6s %7s %7s | %10s | %7s | %8s %8s | %8s %8s | %8s %8s | %6s\n' \
  "records" "lethe r/s" "COPY r/s" "ratio" "srv MB" "ctl MB" "bytes/rec" \
  "table" "probe p50" "p99 ms" "commit50" "p99 ms" "submit50" "p99 ms" "get s"
for n in $sizes; do
  say "$n records: making the files"
  $py - "$n" "$tmp" <<'PY'
import os, struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
with open(f"{out}/images.idx", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28))
    left = n
    while left:
        k = min(left, 10000)
        f.write(os.urandom(k * 784))
        left -= k
with open(f"{out}/labels.idx", "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + bytes(b % 10 for b in os.urandom(n)))
tag = f"n{n}"
with open(f"{out}/subjects.txt", "w") as f:
    f.writelines(f"{tag}-person-{i // 20}\n" for i in range(n))
PY
  dataset=$("$ctl" dataset create --name "records-$n" --shape 784 --type uint8 \
    --classes 10 --json | json 'd["id"]')
  say "$n records: lethectl dataset upload"
  echo 5 >"/proc/$server/clear_refs"
  t0=$(now)
  /usr/bin/time -f '%M' -o "$tmp/ctl.rss" "$ctl" dataset upload "$dataset" \
    --idx-images "$tmp/images.idx" --idx-labels "$tmp/labels.idx" \
    --subjects "$tmp/subjects.txt" --split train >/dev/null
  t1=$(now)
  up=$($py -c "print(f'{$n / ($t1 - $t0):.0f}')")
  srv=$(hwm_mb "$server")
  ctl_mb=$(($(cat "$tmp/ctl.rss") / 1024))

  say "$n records: the same rows by COPY"
  copy_ds=$("$ctl" dataset create --name "copy-$n" --shape 784 --type uint8 \
    --classes 10 --json | json 'd["id"]')
  $py - "$n" "$tmp" "$copy_ds" <<'PY'
import hashlib, sys
n, out, ds = int(sys.argv[1]), sys.argv[2], sys.argv[3]
images = open(f"{out}/images.idx", "rb")
images.seek(16)
labels = open(f"{out}/labels.idx", "rb").read()[8:]
with open(f"{out}/copy.txt", "w") as f:
    for i in range(n):
        key = hashlib.sha256(f"copy-{n}-{i // 20}".encode()).hexdigest()
        feat = images.read(784).hex()
        f.write(f"{ds}\t\\\\x{key}\t{labels[i]}\ttrain\t\\\\x{feat}\n")
PY
  sql "CHECKPOINT" >/dev/null
  t0=$(now)
  psql "$url" -qc "\\copy records (dataset_id, subject_key, label, split, features) from '$tmp/copy.txt'"
  t1=$(now)
  cp=$($py -c "print(f'{$n / ($t1 - $t0):.0f}')")
  rm -f "$tmp/copy.txt"

  rows=$(sql "SELECT count(*) FROM records")
  per=$(sql "SELECT pg_total_relation_size('records') / count(*) FROM records")
  say "$n records: the subject probe ($rows rows in the table)"
  sql "SET client_min_messages = warning; DROP TABLE IF EXISTS probe_keys; CREATE TABLE probe_keys AS
       SELECT row_number() OVER () - 1 AS n, subject_key AS k
         FROM (SELECT DISTINCT subject_key FROM records TABLESAMPLE SYSTEM (1)
               LIMIT 1000) s" >/dev/null
  keys=$(sql "SELECT count(*) FROM probe_keys")
  cat >"$tmp/lookup.sql" <<SQL
\\set i random(0, $((keys - 1)))
SELECT EXISTS (SELECT 1 FROM records WHERE subject_key = (SELECT k FROM probe_keys WHERE n = :i));
SQL
  (cd "$tmp" && "$PG_BIN/pgbench" -n -c 1 -T 5 -f lookup.sql --log --log-prefix=probe "$url" >/dev/null 2>&1)
  read -r p50 p99 < <($py - "$tmp" <<'PY'
import glob, sys
lat = sorted(int(l.split()[2]) for f in glob.glob(f"{sys.argv[1]}/probe.*") for l in open(f))
print(f"{lat[len(lat) // 2] / 1000:.3f} {lat[int(len(lat) * 0.99)] / 1000:.3f}")
PY
)
  rm -f "$tmp"/probe.*
  # Intake is measured in steady state, as a service runs between bulk
  # loads: the loads' dirty pages written out and the table vacuumed, so
  # that a checkpoint or autovacuum pass of the load's gigabytes does not
  # stand in every commit's way. Beside it, the bare cost of a durable
  # commit on this disk at this moment (pgbench, one-row INSERT, 8
  # clients, 5 s): the floor under every SubmitErasure.
  say "$n records: VACUUM ANALYZE and CHECKPOINT"
  sql "VACUUM ANALYZE records" >/dev/null
  sql "CHECKPOINT" >/dev/null
  sql "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS commit_probe (n bigint)" >/dev/null
  echo "INSERT INTO commit_probe VALUES (1);" >"$tmp/one_insert.sql"
  (cd "$tmp" && "$PG_BIN/pgbench" -n -c 8 -T 5 -f one_insert.sql --log --log-prefix=commit "$url" >/dev/null 2>&1)
  read -r c50 c99 < <($py - "$tmp" <<'PY'
import glob, sys
lat = sorted(int(l.split()[2]) for f in glob.glob(f"{sys.argv[1]}/commit.*") for l in open(f))
print(f"{lat[len(lat) // 2] / 1000:.2f} {lat[int(len(lat) * 0.99)] / 1000:.2f}")
PY
)
  rm -f "$tmp"/commit.*
  say "$n records: SubmitErasure through the server"
  "$ctl" model register --name "probe-$n" --dataset "$dataset" --kind logreg \
    --optimizer sgd --lr 0.1 --epochs 1 --batch-size 256 >/dev/null
  read -r s50 s99 < <("$load" --target "$LETHE_ADDR" --token "$submitter" \
    --concurrency 8 --warmup 2 --duration 10 --subjects $((n / 20)) \
    --subject-format "n$n-person-%d" --run-id "scale-$n" 2>/dev/null \
    | json "'%.2f %.2f' % (d['p50_ms'], d['p99_ms'])")
  ratio=$($py -c "print(f'{$up / $cp:.2f}')")
  t0=$(now)
  "$ctl" dataset get "$dataset" >/dev/null
  t1=$(now)
  get=$($py -c "print(f'{$t1 - $t0:.2f}')")
  printf '%9s | %10s %10s %6s %7s %7s | %10s | %7s | %8s %8s | %8s %8s | %8s %8s | %6s\n' \
    "$n" "$up" "$cp" "$ratio" "$srv" "$ctl_mb" "$per" "$rows" "$p50" "$p99" \
    "$c50" "$c99" "$s50" "$s99" "$get"
done
echo "lethe r/s: lethectl dataset upload (IDX) through the server; COPY r/s: psql \\copy"
echo "of the same rows (text format) into the same table; srv/ctl MB: peak RSS"
echo "during the upload; bytes/rec: records' table and indexes over its rows;"
echo "probe: SubmitErasure's subject lookup, ms; commit: a one-row durable INSERT"
echo "(pgbench, 8 clients), ms; submit: SubmitErasure through the server, 8 in"
echo "flight, ms, after VACUUM ANALYZE and CHECKPOINT; get s: lethectl dataset get."
