#!/usr/bin/env bash
# Runs lethe's test suites: ctest over the build in build/ (configure and
# build first: cmake -S . -B build -G Ninja && cmake --build build -j2).
#
#   scripts/test.sh [ctest args...]     e.g. scripts/test.sh -L unit
#
# The integration suites use the PostgreSQL server in LETHE_TEST_DATABASE_URL
# (each test creates and drops its own database there). When it is unset this
# script starts a throwaway cluster with scripts/pg-local.sh and stops it on
# exit. ctest's summary line is the last line printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LETHE_BUILD_DIR:-$root/build}
[[ -f $build/CTestTestfile.cmake ]] \
  || { echo "test.sh: no build in $build; run: cmake -S . -B build -G Ninja && cmake --build build -j2" >&2; exit 1; }

if [[ -z ${LETHE_TEST_DATABASE_URL:-} ]]; then
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/lethe-test-pg.XXXXXX")
  cleanup() {
    "$root/scripts/pg-local.sh" stop "$pg_dir" >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  }
  trap cleanup EXIT
  "$root/scripts/pg-local.sh" start "$pg_dir"
  LETHE_TEST_DATABASE_URL=$("$root/scripts/pg-local.sh" url "$pg_dir")
  export LETHE_TEST_DATABASE_URL
fi

# Run ctest with its output captured so that its summary line can be printed
# last, after anything the cleanup above writes.
log=$(mktemp "${TMPDIR:-/tmp}/lethe-ctest.XXXXXX")
status=0
ctest --test-dir "$build" --output-on-failure -j2 "$@" 2>&1 | tee "$log" || status=$?
summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
rm -f "$log"
if [[ -n ${pg_dir:-} ]]; then
  trap - EXIT
  cleanup
fi
[[ -n $summary ]] && echo "$summary"
exit "$status"
