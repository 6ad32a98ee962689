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
rm -f "$out"
echo "demo_test: exit $status, $completed completed, $verified verified"
[[ $status -eq 0 && $completed -eq 3 && $verified -eq 3 ]]
