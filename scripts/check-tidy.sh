#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy: every finding an error) over the project's
# .cc files, in parallel, with BUILD_DIR's compile_commands.json (CMake
# writes it; configure first, and build the `lethe_proto` target so that the
# generated protobuf headers exist). Exits 1 on any finding.
#
#   scripts/check-tidy.sh BUILD_DIR [FILE.cc...]   (default: every project
#                                                   .cc in the database)
#
# Translation units that include LibTorch headers, directly or through a
# project header (core/, tests/core/, bench/engine/, and the worker files
# that use core's API), are skipped: parsing LibTorch costs about 45 s per
# file, more than the rest of the tree together. LETHE_TIDY_TORCH=1 checks
# them too. LETHE_TIDY_EXCLUDE leaves out the files whose root-relative
# path matches that extended regex (CI: '^tests/'). CLANG_TIDY names the
# binary (default clang-tidy-14, else clang-tidy); LETHE_TIDY_JOBS the
# parallelism (default: the CPU count).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
(($# >= 1)) || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
build=$(cd "$1" && pwd)
shift
db=$build/compile_commands.json
[[ -f $db ]] || { echo "check-tidy.sh: no $db (configure with cmake first)" >&2; exit 2; }

clang_tidy=${CLANG_TIDY:-}
if [[ -z $clang_tidy ]]; then
  if command -v clang-tidy-14 >/dev/null; then
    clang_tidy=clang-tidy-14
  else
    clang_tidy=clang-tidy
  fi
fi
command -v "$clang_tidy" >/dev/null \
  || { echo "check-tidy.sh: $clang_tidy not found (apt-get install clang-tidy-14)" >&2; exit 2; }

# Whether FILE includes LibTorch, directly or through the project's quoted
# headers (resolved beside FILE, at the root, and in core/include).
declare -A torch_memo=()
includes_torch() {
  local file=$1
  [[ -n ${torch_memo[$file]:-} ]] && { [[ ${torch_memo[$file]} == 1 ]]; return; }
  torch_memo[$file]=0  # (breaks include cycles)
  if grep -qE '^#include <(ATen|c10|torch)/' "$file"; then
    torch_memo[$file]=1
    return 0
  fi
  local inc dir candidate
  dir=$(dirname "$file")
  while read -r inc; do
    for candidate in "$dir/$inc" "$root/$inc" "$root/core/include/$inc"; do
      if [[ -f $candidate ]]; then
        if includes_torch "$(realpath "$candidate")"; then
          torch_memo[$file]=1
          return 0
        fi
        break
      fi
    done
  done < <(sed -nE 's/^#include "([^"]+)".*/\1/p' "$file")
  return 1
}

if (($# > 0)); then
  candidates=()
  for f in "$@"; do candidates+=("$(realpath "$f")"); done
else
  # The project's own .cc files in the database: not generated code (under
  # a build folder), not third-party.
  mapfile -t candidates < <(
    grep -oE '"file": *"[^"]+"' "$db" | sed -E 's/.*"([^"]+)"$/\1/' \
      | grep -E "^$root/" | grep -Ev "^$root/build[^/]*/" | grep -E '\.cc$' \
      | sort -u)
fi

files=()
skipped=()
excluded=0
for f in "${candidates[@]}"; do
  if [[ -n ${LETHE_TIDY_EXCLUDE:-} ]] \
      && grep -qE "$LETHE_TIDY_EXCLUDE" <<<"${f#"$root"/}"; then
    excluded=$((excluded + 1))
  elif [[ ${LETHE_TIDY_TORCH:-0} != 1 ]] && includes_torch "$f"; then
    skipped+=("${f#"$root"/}")
  else
    files+=("$f")
  fi
done
if ((${#skipped[@]} > 0)); then
  echo "check-tidy.sh: skipping ${#skipped[@]} files that include LibTorch" \
       "(LETHE_TIDY_TORCH=1 checks them):"
  printf '  %s\n' "${skipped[@]}"
fi
((excluded == 0)) \
  || echo "check-tidy.sh: leaving out $excluded files matching LETHE_TIDY_EXCLUDE ($LETHE_TIDY_EXCLUDE)"
((${#files[@]} > 0)) || { echo "check-tidy.sh: nothing to check"; exit 0; }

jobs=${LETHE_TIDY_JOBS:-$(nproc)}
log=$(mktemp "${TMPDIR:-/tmp}/lethe-tidy.XXXXXX")
trap 'rm -f "$log"' EXIT
start=$(date +%s)
echo "check-tidy.sh: ${#files[@]} files, $jobs at a time"
status=0
# -Wno-unknown-warning-option: the database holds GCC's flags.
# -Wthread-safety: the ABSL_GUARDED_BY annotations (.clang-tidy).
printf '%s\0' "${files[@]}" \
  | xargs -0 -r -n 1 -P "$jobs" "$clang_tidy" -p "$build" --quiet \
      --header-filter="^$root/(base|bench|cert|core|lethectl|observability|server|storage|tests|worker)/" \
      --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wthread-safety \
  > "$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - start))
# Only the findings, each once (a header's finding repeats per includer).
grep -E '^/.*:[0-9]+:[0-9]+: (error|warning): ' "$log" | sort -u > "$log.findings" || true
findings=$(wc -l < "$log.findings")
if ((status != 0 || findings > 0)); then
  # clang-tidy's "N warnings generated." counts what it suppressed.
  grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$log" || true
  echo "check-tidy.sh: $findings findings in ${#files[@]} files (${elapsed}s); by check:"
  grep -oE '\[[a-z0-9.,-]+\]$' "$log.findings" \
    | sed -E 's/,-warnings-as-errors//; s/[][]//g' | sort | uniq -c | sort -rn
  rm -f "$log.findings"
  exit 1
fi
rm -f "$log.findings"
echo "check-tidy.sh: ${#files[@]} files clean (${elapsed}s)"
