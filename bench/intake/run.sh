#!/usr/bin/env bash
# The intake benchmark (docs/benchmarks.md, "Intake"): SubmitErasure through
# a lethe server against pgbench's single-row INSERT, on one durable
# PostgreSQL, at the same concurrencies.
#
#   bench/intake/run.sh [--duration S] [--warmup S] [--concurrency "1 8 32"]
#                       [--client callback|sync] [--channels shared|per-thread]
#                       [--build-dir DIR] [--server-args "..."] [--keep DIR]
#                       [--flood "none bad-keys watches"] [--flood-nice N]
#                       [--flood-sched normal|idle] [--flood-cpu N]
#                       [--flood "none bad-keys bad-keys@bystander ..."]
#
# The server runs with --rate-limit-per-key 0 (one key drives the load);
# --server-args come after it and may override it.
#
# --flood MODES (issue 17, item 4): instead of the pgbench comparison, runs
# the load at the first --concurrency once per mode, each alongside that
# attack from 64 threads of a second intake_load process (--flood:
# bad-keys = GetErasure with a
# new made-up API key per call; watches = WatchErasure streams opened and
# held 200 ms, with a second submitter key), and reports the good
# submissions' p50/p99 against the `none` run of the same server, and the
# server's CPU use in each. --flood-nice N (default 0) runs the attacker
# at that nice value: on one machine its CPU is otherwise taken from the
# server, PostgreSQL and the measured client. --flood-sched idle runs it
# under SCHED_IDLE instead (chrt --idle): it gets only CPU time nothing
# else wants, the nearest this one machine comes to an attacker on another
# machine, whose CPU is its own (the attack rate it reaches is printed, so
# a weaker attack shows). --flood-cpu N pins the attacker to CPU N
# (taskset); run the script itself under `taskset -c M` so that the server,
# PostgreSQL and the measured client share CPU M and the attacker's work
# lands on a CPU of its own, as on a machine of its own. A mode written
# MODE@bystander sends the same attack to a second lethe server (same
# database, same flags, same cores) instead of the measured one: a control
# for how much of the good calls' slow-down is the machine's (CPU taken by
# the attacker and by refusing its calls anywhere on it) and how much is the
# measured server's own (its threads, queues and locks shared with the
# attack). Run it
# twice to compare the limits with none:
#   bench/intake/run.sh --concurrency 8 --flood "none bad-keys watches"
#   bench/intake/run.sh --concurrency 8 --flood "none bad-keys watches" \
#     --server-args "--auth-failures-per-peer 0 --max-queued-calls 0 --max-watches-per-key 0"
#
# It builds `lethe` and `intake_load` if needed, starts a throwaway durable
# cluster (synchronous_commit on) in a temporary folder, migrates it, creates
# the server secret, a submitter key and the fixture (two datasets with
# records, one model on each), starts the server, and for each concurrency
# runs intake_load and then pgbench, a CHECKPOINT before each. Everything it
# started is stopped on exit, also on failure. Results: a table on stdout;
# the raw JSON lines and logs stay in --keep DIR when given.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
duration=20
warmup=3
concurrency="1 8 32"
client=callback
channels=shared
build_dir=$root/build-bench
server_args=""
keep=""
flood=""
flood_nice=0
flood_sched=normal
flood_cpu=""
subjects=2000

die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "run.sh: $*" >&2; }

while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --client) client=$2; shift 2 ;;
    --channels) channels=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --server-args) server_args=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --flood) flood=$2; shift 2 ;;
    --flood-nice) flood_nice=$2; shift 2 ;;
    --flood-sched) flood_sched=$2; shift 2 ;;
    --flood-cpu) flood_cpu=$2; shift 2 ;;
    -h|--help) sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ $flood_sched == normal || $flood_sched == idle ]] \
  || die "--flood-sched is normal or idle, not '$flood_sched'"
[[ -x $PG_BIN/pgbench ]] || die "$PG_BIN/pgbench not found (package postgresql-15)"

# --- build -----------------------------------------------------------------
if [[ ! -f $build_dir/build.ninja ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DLETHE_BUILD_TESTS=OFF \
    -DLETHE_BUILD_BENCH=ON >&2
fi
cmake --build "$build_dir" -j2 --target lethe intake_load >&2
lethe=$build_dir/server/lethe
load=$build_dir/bench/intake/intake_load

# --- cluster, server, fixture ------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/lethe-intake.XXXXXX")
chmod 755 "$work"
server_pid=""
bystander_pid=""
cleanup() {
  set +e
  for pid in $server_pid $bystander_pid; do
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  "$root/scripts/pg-local.sh" stop "$work/pg" >/dev/null 2>&1
  if [[ -n $keep ]]; then
    mkdir -p "$keep" && cp "$work"/*.json "$work"/*.log "$keep"/ 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$root/scripts/pg-local.sh" start "$work/pg" --durable
url=$("$root/scripts/pg-local.sh" url "$work/pg")
psql_q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }
say "PostgreSQL: $(psql_q -tAc "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit') || ' wal_sync_method=' || current_setting('wal_sync_method')")"
[[ $(psql_q -tAc "SHOW synchronous_commit") == on ]] || die "synchronous_commit is not on"

"$lethe" migrate --database-url "$url" >&2
"$lethe" admin create-secret --secrets-file "$work/secret" >&2
token=$("$lethe" admin create-key --role submitter --description intake-bench \
  --database-url "$url" --secrets-file "$work/secret")
flood_token=$("$lethe" admin create-key --role submitter --description flood-bench \
  --database-url "$url" --secrets-file "$work/secret")

# Fixture: dataset A holds 5 records for each of $subjects subjects (the ids
# the load uses), dataset B 5 records each for as many other subjects; one
# READY model on each. A submit then finds one model to erase from.
python3 - "$work/secret" "$subjects" >"$work/fixture.sql" <<'EOF'
import hmac, hashlib, sys
secret = bytes.fromhex(open(sys.argv[1]).read().strip())
n = int(sys.argv[2])
print("BEGIN;")
for ds in ("a", "b"):
    print(f"INSERT INTO datasets (id, name, feature_shape, feature_type, num_classes) "
          f"VALUES ('00000000-0000-4000-8000-00000000000{'1' if ds == 'a' else '2'}', "
          f"'bench-{ds}', '{{28,28}}', 'uint8', 10);")
print("COPY records (dataset_id, subject_key, label, split, features) FROM stdin;")
features = "\\\\x" + "00" * 784
for ds, fmt in (("1", "subject-%06d@example.org"), ("2", "other-%06d@example.org")):
    for i in range(n):
        key = hmac.new(secret, (fmt % i).encode(), hashlib.sha256).hexdigest()
        for j in range(5):
            split = "test" if j == 4 else "train"
            print(f"00000000-0000-4000-8000-00000000000{ds}\t\\\\x{key}\t{(i + j) % 10}\t{split}\t{features}")
print("\\.")
for ds in ("1", "2"):
    print(f"INSERT INTO models (name, dataset_id, architecture, recipe, policy, state) "
          f"VALUES ('bench-model-{ds}', '00000000-0000-4000-8000-00000000000{ds}', "
          f"'{{}}', '{{}}', '{{}}', 'READY');")
print("COMMIT;")
print("CREATE TABLE pgbench_erasure_requests (LIKE erasure_requests "
      "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);")
# Only the tables the fixture filled: statistics of an empty
# erasure_requests make each connection plan its foreign-key checks as
# sequential scans and keep those plans until autovacuum analyzes the table
# again (about a minute), so every submission would scan all earlier ones.
print("ANALYZE datasets, records, models;")
EOF
psql_q -f "$work/fixture.sql" >/dev/null
say "fixture: $(psql_q -tAc "SELECT count(*) || ' records, ' || (SELECT count(*) FROM models) || ' models' FROM records")"

# pgbench's equivalent: one durable single-row INSERT into a copy of
# erasure_requests (same columns, defaults, constraints and indexes).
cat >"$work/insert.sql" <<'EOF'
INSERT INTO pgbench_erasure_requests (client_key_id, idempotency_key, body_sha256, subject_key, subject_commitment, legal_ground, legal_reference, state) VALUES ('pgbench', gen_random_uuid()::text, sha256(gen_random_uuid()::text::bytea), sha256(gen_random_uuid()::text::bytea), sha256(gen_random_uuid()::text::bytea), 'GDPR_ART17_1B_CONSENT_WITHDRAWN', 'benchmark ticket', 'QUEUED');
EOF

# start_server NAME PID_VAR PORT_VAR: a lethe server on a free loopback
# port, its log in $work/NAME.log; sets PID_VAR as soon as it runs (so that
# cleanup stops it even if it never comes up) and PORT_VAR.
start_server() {
  local started_port started_pid
  started_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # shellcheck disable=SC2086
  "$lethe" serve --database-url "$url" --secrets-file "$work/secret" \
    --listen "127.0.0.1:$started_port" --insecure-plaintext --migrate-on-start false \
    --rate-limit-per-key 0 $server_args \
    2>"$work/$1.log" &
  started_pid=$!
  printf -v "$2" %s "$started_pid"
  printf -v "$3" %s "$started_port"
  for _ in $(seq 1 100); do
    grep -q '"listening"' "$work/$1.log" 2>/dev/null && break
    kill -0 "$started_pid" 2>/dev/null || { cat "$work/$1.log" >&2; die "$1 exited"; }
    sleep 0.1
  done
  grep -q '"listening"' "$work/$1.log" || die "$1 did not start"
  say "$1 pid $started_pid on 127.0.0.1:$started_port"
}
port=""
start_server server server_pid port

# The bystander: only when a flood mode names it (MODE@bystander).
bystander_port=""
if [[ " $flood " == *@bystander* ]]; then
  start_server bystander bystander_pid bystander_port
fi

commits() { psql_q -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
vm() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server_pid/status"; }

# --- flood runs ----------------------------------------------------------------
if [[ -n $flood ]]; then
  c=${concurrency%% *}
  cpu() { awk '{ print $14 + $15 }' "/proc/${1:-$server_pid}/stat"; }  # ticks
  by_cpu() { if [[ -n $bystander_pid ]]; then cpu "$bystander_pid"; else echo 0; fi; }
  for mode in $flood; do
    say "lethe, concurrency $c, flood $mode"
    before=$(cpu); by_before=$(by_cpu); t0=$(date +%s.%N)
    flood_pid=""
    if [[ $mode != none ]]; then  # the attacker: a process of its own
      attack=${mode%@*} target_port=$port
      [[ $mode == *@bystander ]] && target_port=$bystander_port
      sched=()
      [[ $flood_sched == idle ]] && sched=(chrt --idle 0)
      [[ -n $flood_cpu ]] && sched+=(taskset -c "$flood_cpu")
      LETHE_BENCH_TOKEN=$flood_token "${sched[@]}" nice -n "$flood_nice" "$load" \
        --target "127.0.0.1:$target_port" \
        --concurrency 0 --warmup "$warmup" --duration "$((duration + 1))" \
        --subjects "$subjects" --flood "$attack" \
        >"$work/flood-$mode-attacker.json" &
      flood_pid=$!
      sleep 1
    fi
    LETHE_BENCH_TOKEN=$token "$load" --target "127.0.0.1:$port" \
      --concurrency "$c" --warmup "$warmup" --duration "$duration" \
      --client "$client" --channels "$channels" --subjects "$subjects" \
      >"$work/flood-$mode.json" \
      || say "intake_load reported errors: $(cat "$work/flood-$mode.json")"
    if [[ -n $flood_pid ]]; then wait "$flood_pid" || true; fi
    echo "{\"cpu_ticks\":$(( $(cpu) - before )),\"bystander_ticks\":$(( $(by_cpu) - by_before )),\"t0\":$t0,\"t1\":$(date +%s.%N)}" \
      >"$work/flood-$mode-server.json"
  done
  python3 - "$work" "$flood" "$server_args" "$flood_nice $flood_sched${flood_cpu:+, attacker on CPU $flood_cpu, the rest on $(taskset -pc $$ | sed 's/.*: //')}" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
work, modes, args, nice, hz = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4], float(sys.argv[5])
rows = {m: json.load(open(f"{work}/flood-{m}.json")) for m in modes}
cpu = {m: json.load(open(f"{work}/flood-{m}-server.json")) for m in modes}
attack = {m: json.load(open(f"{work}/flood-{m}-attacker.json")) if m != "none"
          else {"flood_calls": 0, "seconds": 1, "flood_codes": {}} for m in modes}
base = rows.get("none")
print(f"server args: --rate-limit-per-key 0 {args}; flood nice, scheduling: {nice}".strip())
print(f"{'flood':>18} | {'good req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} | "
      f"{'p99 / none':>10} | {'server CPU':>10} | {'bystander':>10} | {'flood calls/s':>13} flood codes")
for m, r in rows.items():
    ratio = r["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] else float("nan")
    seconds = cpu[m]["t1"] - cpu[m]["t0"]
    cores = cpu[m]["cpu_ticks"] / hz / seconds
    by = cpu[m]["bystander_ticks"] / hz / seconds
    print(f"{m:>18} | {r['rps']:>10.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>6} | "
          f"{ratio:>10.2f} | {cores:>6.2f} cores | {by:>6.2f} cores | "
          f"{attack[m]['flood_calls'] / attack[m]['seconds']:>13.0f} {attack[m]['flood_codes']}")
EOF
  say "flood codes: gRPC status numbers (8 RESOURCE_EXHAUSTED, 16 UNAUTHENTICATED, 4 DEADLINE_EXCEEDED)"
  exit 0
fi

# --- runs --------------------------------------------------------------------
for c in $concurrency; do
  psql_q -c CHECKPOINT
  load1=$(cut -d' ' -f1 /proc/loadavg)
  before=$(commits)
  say "lethe, concurrency $c"
  LETHE_BENCH_TOKEN=$token "$load" --target "127.0.0.1:$port" \
    --concurrency "$c" --warmup "$warmup" --duration "$duration" \
    --client "$client" --channels "$channels" --subjects "$subjects" \
    >"$work/lethe-$c.json" \
    || say "intake_load reported errors: $(cat "$work/lethe-$c.json")"
  after=$(commits)
  echo "{\"concurrency\":$c,\"vm_hwm_kb\":$(vm VmHWM),\"vm_rss_kb\":$(vm VmRSS),\"db_commits\":$((after - before)),\"loadavg_before\":$load1}" \
    >"$work/server-$c.json"

  psql_q -c CHECKPOINT
  say "pgbench, concurrency $c"
  "$PG_BIN/pgbench" -n -f "$work/insert.sql" -c "$c" -j "$c" -T "$warmup" \
    "$url" >/dev/null 2>&1
  mkdir -p "$work/pgbench-$c"
  (cd "$work/pgbench-$c" && "$PG_BIN/pgbench" -n -f "$work/insert.sql" \
    -c "$c" -j "$c" -T "$duration" --log --log-prefix=tx "$url") \
    >"$work/pgbench-$c.log" 2>&1 || { cat "$work/pgbench-$c.log" >&2; die "pgbench failed"; }
done

# --- report ------------------------------------------------------------------
python3 - "$work" "$concurrency" "$duration" <<'EOF'
import glob, json, re, sys
work, cs, duration = sys.argv[1], sys.argv[2].split(), float(sys.argv[3])

def pct(sorted_v, q):
    return sorted_v[min(len(sorted_v) - 1, int(q * (len(sorted_v) - 1) + 0.5))] if sorted_v else 0.0

print(f"{'c':>3} | {'lethe req/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'commits/req':>11} | "
      f"{'pgbench tps':>11} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5} | {'server VmHWM':>12} | {'load':>5}")
rows = []
for c in cs:
    l = json.load(open(f"{work}/lethe-{c}.json"))
    s = json.load(open(f"{work}/server-{c}.json"))
    text = open(f"{work}/pgbench-{c}.log").read()
    tps = float(re.search(r"tps = ([0-9.]+)", text).group(1))
    lat = []
    for path in glob.glob(f"{work}/pgbench-{c}/tx*"):
        for line in open(path):
            f = line.split()
            lat.append(int(f[2]) / 1000.0)
    lat.sort()
    ratio = l["rps"] / tps if tps else 0
    per_req = s["db_commits"] / max(1, l["requests"] + l["errors"])
    print(f"{c:>3} | {l['rps']:>11.0f} {l['p50_ms']:>7.2f} {l['p99_ms']:>7.2f} {per_req:>11.2f} | "
          f"{tps:>11.0f} {pct(lat, .5):>7.2f} {pct(lat, .99):>7.2f} | {ratio:>5.2f} | "
          f"{s['vm_hwm_kb'] / 1024:>9.1f} MB | {s['loadavg_before']:>5.2f}")
    if l["errors"]:
        print(f"    lethe errors at c={c}: {l['errors']} {l['error_codes']} {l['first_error']}")
    rows.append({"concurrency": int(c), "lethe": l, "server": s,
                 "pgbench": {"tps": tps, "p50_ms": pct(lat, .5), "p99_ms": pct(lat, .99),
                             "transactions": len(lat)},
                 "ratio": ratio})
with open(f"{work}/summary.json", "w") as out:
    json.dump(rows, out)
EOF
say "commits/req: transactions the database committed during the lethe run per request (health checks included); load: 1-minute load average before the lethe run, on $(nproc) CPUs"
