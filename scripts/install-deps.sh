#!/usr/bin/env bash
# Installs every Debian package lethe needs to build, run and test.
# Idempotent: packages already present are skipped by apt. Used by .ci/run,
# the README's commands and the Dockerfile's build stage.
#
#   scripts/install-deps.sh            build + run + test packages
#   scripts/install-deps.sh --build    only what building the binaries needs
#                                      (the Dockerfile's build stage)
#   scripts/install-deps.sh --runtime  only the shared libraries and tools a
#                                      local server/worker/demo needs
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libtorch-dev libpqxx-dev prometheus-cpp-dev libssl-dev
  libgtest-dev libgmock-dev libseccomp-dev
)
runtime_pkgs=(
  postgresql postgresql-client libopenblas0-pthread dataset-fashion-mnist
  openssl ca-certificates procps bubblewrap
)
test_pkgs=(
  python3 python3-torch python3-grpcio python3-grpc-tools prometheus
  clang-format-14 clang-tidy-14 clang-14 libclang-rt-14-dev llvm-14
)
# Test tools wanted as commands, with the package that brings each when it
# is missing (a machine may have them from elsewhere, e.g. Node.js with its
# own npm, which Debian's npm package would conflict with):
# kubectl renders deploy/k8s; node and npm run its offline schema check.
test_cmds=(kubectl:kubernetes-client node:nodejs npm:npm)

case "${1:-}" in
  --runtime) want=("${runtime_pkgs[@]}"); cmds=() ;;
  --build) want=("${build_pkgs[@]}"); cmds=() ;;
  "") want=("${runtime_pkgs[@]}" "${build_pkgs[@]}" "${test_pkgs[@]}")
      cmds=("${test_cmds[@]}") ;;
  *) echo "install-deps: unknown option $1 (--build, --runtime)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
for c in "${cmds[@]}"; do
  command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
