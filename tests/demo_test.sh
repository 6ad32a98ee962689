#!/usr/bin/env bash
# The README's first command, end to end, in a fresh state folder: it must
# exit 0 and show three completed erasures with verified certificates.
set -euo pipefail
build=$1
state=$(mktemp -d "${TMPDIR:-/tmp}/lethe-demo-test.XXXXXX")
trap 'rm -rf "$state"' EXIT
out="$state.log"
status=0
LETHE_STATE_DIR=$state LETHE_BUILD_DIR=$build LETHE_DEMO_SKIP_BUILD=1 \
  "$(dirname "$0")/../scripts/demo.sh" --once >"$out" 2>&1 || status=$?
cat "$out"
completed=$(grep -c ': completed$' "$out" || true)
verified=$(grep -c '^VERIFIED ' "$out" || true)
# Each certificate states the gate the approximate result passed: the
# calibrated range of the forget set's confidence rank, both ends.
gated=$(grep -c 'forget_confidence = ' "$out" || true)
rm -f "$out"
# A full run's logs (server and worker, JSON lines) name requests, never a
# data subject ("person-N", "visitor-N"), an API key's secret or the
# subject-key secret.
leaks=0
logs=("$state/server.log" "$state/worker.log")
for log in "${logs[@]}"; do
  [[ -s $log ]] || { echo "demo_test: $log is missing or empty"; leaks=$((leaks + 1)); }
done
if grep -nE 'person-[0-9]|visitor-[0-9]' "${logs[@]}"; then leaks=$((leaks + 1)); fi
secret=$(tr -d '\n' < "$state/admin.key")
if [[ -n $secret ]] && grep -nF "${secret##*_}" "${logs[@]}"; then leaks=$((leaks + 1)); fi
subject_secret=$(tr -d '\n' < "$state/secret")
if [[ -n $subject_secret ]] && grep -nF "$subject_secret" "${logs[@]}"; then
  leaks=$((leaks + 1))
fi
lines=$(cat "${logs[@]}" | wc -l)
nonjson=$(cat "${logs[@]}" | grep -cv '^{"time":' || true)
echo "demo_test: exit $status, $completed completed, $verified verified, $gated gated," \
  "$lines log lines ($nonjson not JSON), $leaks leak(s)"
[[ $status -eq 0 && $completed -eq 3 && $verified -eq 3 && $gated -ge 6 && $leaks -eq 0 &&
   $nonjson -eq 0 && $lines -gt 0 ]]
