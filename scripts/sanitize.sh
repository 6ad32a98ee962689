#!/usr/bin/env bash
# The sanitizer job: builds every suite that does not need LibTorch with
# clang's sanitizers and runs it (ctest through scripts/test.sh, so the
# integration suites talk to a real PostgreSQL: LETHE_TEST_DATABASE_URL or
# a throwaway cluster).
#
#   scripts/sanitize.sh [BUILD_DIR] [SANITIZERS]
#       BUILD_DIR   default build-asan
#       SANITIZERS  default address,undefined; or thread
#
# With `thread` (ThreadSanitizer) only the suites whose threads meet through
# lethe's own locks are built and run (TSAN_SUITES below): the executor, the
# per-key watch slots, buffer budget and key caches; the intake batcher
# against PostgreSQL; concurrent certificate issuers; the in-memory backend;
# the logger. gRPC and Debian's Abseil are not built with TSan, so a suite
# that runs a gRPC server would report gRPC's internal ordering (its
# absl::Mutex, its atomics) as data races; lethe's own locks are std::mutex
# underneath (base/mutex.h), which TSan sees in any build.
#
# The build is clang 14, LETHE_BUILD_ENGINE=OFF (core/, worker/ and the
# suites that train models are left out: LibTorch is not instrumented) and
# no benchmarks. Every report aborts its process (-fno-sanitize-recover), so
# a finding fails the test that ran it; its report is in ctest's output.
# Script-driven tests that exercise packaging or other programs rather than
# lethe's C++ (the Kubernetes manifests, the Prometheus rule files, the
# pg-local.sh script, the auditor's Python and openssl checks of bundles)
# are not rerun here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-asan}
sanitizers=${2:-address,undefined}
jobs=${LETHE_JOBS:-2}
# The fuzz targets (tests/fuzz) link libFuzzer in the AddressSanitizer build.
case $sanitizers in *address*) fuzz=ON ;; *) fuzz=OFF ;; esac

cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLETHE_BUILD_ENGINE=OFF -DLETHE_BUILD_BENCH=OFF \
  -DLETHE_SANITIZE="$sanitizers" -DLETHE_FUZZ="$fuzz" >/dev/null
if [[ $sanitizers == thread ]]; then
  TSAN_SUITES=(server_unit_test erasure_batch_test certificate_store_test
               memory_backend_test log_test)
  cmake --build "$build" -j"$jobs" --target "${TSAN_SUITES[@]}"
else
  cmake --build "$build" -j"$jobs"
fi

# Symbolised stacks; leaks reported at exit; UBSan stacks too. TSan's
# second_deadlock_stack helps read lock-order reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# Third-party leaks only, each explained in the file.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/sanitizers/lsan.supp:print_suppressions=0}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-14 || true)}
if [[ $sanitizers == thread ]]; then
  # Each suite's binary, on the PostgreSQL of LETHE_TEST_DATABASE_URL (or
  # a private cluster each starts). A report fails its suite.
  failed=()
  for suite in "${TSAN_SUITES[@]}"; do
    binary=$(find "$build/tests" -type f -name "$suite" -perm -u+x | head -n 1)
    echo "=== sanitize.sh (thread): $suite"
    if ! "$binary" --gtest_brief=1; then failed+=("$suite"); fi
  done
  if ((${#failed[@]} > 0)); then
    echo "sanitize.sh (thread): failed: ${failed[*]}"
    exit 1
  fi
  echo "sanitize.sh (thread): ${#TSAN_SUITES[@]} suites passed"
  exit 0
fi
LETHE_BUILD_DIR=$build "$root/scripts/test.sh" \
  -E '^(k8s_manifests|prometheus_rules_test|prometheus_config_check|pg_local_script|AuditScriptTest\..*|BundleTest\.AuditScriptChecksTheBundleWithStandardToolsOnly)$'
