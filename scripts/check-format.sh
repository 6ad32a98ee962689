#!/usr/bin/env bash
# Checks that every C++ file of the project is formatted as .clang-format
# says (clang-format --dry-run --Werror); exits 1 and lists the files that
# are not. Fix one with `clang-format -i FILE`.
#
#   scripts/check-format.sh [FILE...]    (default: every tracked or new,
#                                         not ignored, .h and .cc outside
#                                         build*/ folders)
#
# CLANG_FORMAT names the binary (default clang-format-14, else clang-format).
# Other clang-format versions format some constructs differently: use 14,
# the version .ci/run and Debian 12 have.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

clang_format=${CLANG_FORMAT:-}
if [[ -z $clang_format ]]; then
  if command -v clang-format-14 >/dev/null; then
    clang_format=clang-format-14
  else
    clang_format=clang-format
  fi
fi
command -v "$clang_format" >/dev/null \
  || { echo "check-format.sh: $clang_format not found (apt-get install clang-format-14)" >&2; exit 2; }

if (($# > 0)); then
  files=("$@")
else
  mapfile -t files < <(git ls-files --cached --others --exclude-standard \
                         -- '*.h' '*.cc' | grep -Ev '^build[^/]*/' | sort -u)
fi

existing=()
for f in "${files[@]}"; do
  [[ -f $f ]] && existing+=("$f")  # (a file staged for deletion is gone)
done
# One clang-format run over all files: each misformatted line is a
# "FILE:LINE:COL: error: code should be clang-formatted" diagnostic.
mapfile -t bad < <(
  printf '%s\0' "${existing[@]}" \
    | xargs -0 -r "$clang_format" --dry-run --Werror 2>&1 \
    | grep -oE '^[^: ]+:[0-9]+:[0-9]+: (error|warning)' | cut -d: -f1 \
    | sort -u || true)

if ((${#bad[@]} > 0)); then
  echo "check-format.sh: ${#bad[@]} of ${#existing[@]} files are not formatted" \
       "(clang-format -i FILE):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format.sh: ${#existing[@]} files formatted"
