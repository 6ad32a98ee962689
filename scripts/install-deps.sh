#!/usr/bin/env bash
# Installs every Debian package lethe needs to build, run and test.
# Idempotent: packages already present are skipped by apt. Used by .ci/run,
# the README's commands and the Dockerfile's build stage.
#
#   scripts/install-deps.sh            build + run + test packages
#   scripts/install-deps.sh --runtime  only the shared libraries and tools a
#                                      deployed server/worker needs
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libtorch-dev libpqxx-dev prometheus-cpp-dev libssl-dev
  libgtest-dev libgmock-dev
)
runtime_pkgs=(
  postgresql postgresql-client libopenblas0-pthread dataset-fashion-mnist
  openssl ca-certificates procps
)
test_pkgs=(
  python3 python3-torch python3-grpcio python3-grpc-tools prometheus
)

want=("${runtime_pkgs[@]}")
if [[ "${1:-}" != "--runtime" ]]; then
  want+=("${build_pkgs[@]}" "${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
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
