# syntax=docker/dockerfile:1
# lethe's container image: one image for `lethe serve`, `lethe-worker`,
# `lethe migrate`, `lethe admin ...` and `lethectl` (docs/deploy-container.md).
#
#   podman build --format docker -t lethe .                 # CPU (Debian's LibTorch)
#   podman build --format docker -t lethe:cuda \
#     --build-arg TORCH=cuda \
#     --build-arg LIBTORCH_ZIP=libtorch-cxx11-abi-shared-with-deps-2.7.1+cu118.zip .
#
# (`docker build` works the same; --format docker keeps the HEALTHCHECK,
# which the OCI image format has no field for.) The build downloads nothing
# but Debian packages: the CUDA variant needs PyTorch's cxx11-ABI LibTorch
# zip in the build context (see docs/deploy-container.md).
#
# Both variants follow one path with shell conditionals rather than
# alternative stages, so every builder (BuildKit, buildah/podman with or
# without skipping unused stages) builds only what the variant needs.

# A Debian 12 image. Defaults to the official one; scripts/container-build-
# check.sh imports a debootstrapped one under the same name.
ARG BASE_IMAGE=debian:bookworm

# ---------------------------------------------------------------- build ---
FROM ${BASE_IMAGE} AS build

# cpu: Debian's libtorch-dev (what CI tests). cuda: the LibTorch zip below.
ARG TORCH=cpu
# Path, inside the build context, of PyTorch's cxx11-ABI LibTorch zip
# (TORCH=cuda only). Its CUDA major.minor must match the toolkit below.
ARG LIBTORCH_ZIP=libtorch-cuda.zip
# Debian package of the CUDA toolkit that CMake's enable_language(CUDA) in
# LibTorch's Caffe2 config needs (bookworm non-free: CUDA 11.8).
ARG CUDA_TOOLKIT_PACKAGES="nvidia-cuda-toolkit nvidia-cuda-dev"
ARG CMAKE_BUILD_TYPE=RelWithDebInfo
ARG JOBS=2

ENV DEBIAN_FRONTEND=noninteractive

# The build packages CI installs (.ci/run): the same script, so the image
# builds with exactly the toolchain and libraries the tests ran against.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh --build \
 && rm -rf /var/lib/apt/lists/*

COPY . /src
WORKDIR /src

# CUDA only: the toolkit and the LibTorch zip, unpacked to /opt/libtorch.
# CPU: an empty /opt/libtorch/lib, so the runtime stage's COPY is the same.
RUN set -eux; \
    mkdir -p /opt/libtorch/lib; \
    if [ "$TORCH" = cuda ]; then \
      test -f "/src/$LIBTORCH_ZIP" || { \
        echo "TORCH=cuda needs the LibTorch zip at $LIBTORCH_ZIP in the build context" >&2; \
        exit 1; }; \
      sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null || true; \
      if [ -f /etc/apt/sources.list ]; then \
        sed -i '/^deb /s/ main$/ main contrib non-free non-free-firmware/' /etc/apt/sources.list; \
      fi; \
      apt-get update -qq; \
      apt-get install -y -qq --no-install-recommends unzip $CUDA_TOOLKIT_PACKAGES >/dev/null; \
      rm -rf /var/lib/apt/lists/* /opt/libtorch; \
      unzip -q "/src/$LIBTORCH_ZIP" -d /opt; \
      rm -f "/src/$LIBTORCH_ZIP"; \
      test -f /opt/libtorch/share/cmake/Torch/TorchConfig.cmake; \
    elif [ "$TORCH" != cpu ]; then \
      echo "TORCH must be cpu or cuda, not $TORCH" >&2; exit 1; \
    fi

# Tests and benchmarks off: only the three binaries. There are no install()
# rules, so they are staged from the build tree into /opt/lethe/bin,
# without debug info.
RUN set -eux; \
    torch_args=""; \
    if [ "$TORCH" = cuda ]; then \
      torch_args="-DTorch_DIR=/opt/libtorch/share/cmake/Torch \
                  -DCMAKE_CUDA_FLAGS=-allow-unsupported-compiler"; \
    fi; \
    cmake -S /src -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE="$CMAKE_BUILD_TYPE" \
      -DLETHE_BUILD_TESTS=OFF -DLETHE_BUILD_BENCH=OFF \
      $torch_args; \
    cmake --build /build -j"$JOBS" --target lethe lethe-worker lethe-engine \
      lethectl; \
    install -d /opt/lethe/bin; \
    install -m 0755 /build/server/lethe /build/worker/lethe-worker \
      /build/worker/lethe-engine /build/lethectl/lethectl /opt/lethe/bin/; \
    strip --strip-debug /opt/lethe/bin/*; \
    /opt/lethe/bin/lethe version

# The entry point: dispatches the image's commands, and the health check.
RUN set -eu; \
    printf '%s\n' \
'#!/bin/sh' \
'# lethe image entry point: lethe-entrypoint COMMAND [ARGS...]' \
'#   serve|migrate|admin|version  -> lethe COMMAND ARGS' \
'#   worker                       -> lethe-worker ARGS' \
'#   lethectl                     -> lethectl ARGS' \
'#   healthcheck                  -> the image HEALTHCHECK (grpc.health.v1 for serve)' \
'#   anything else                -> run as is (sh, lethe, lethe-worker, ...)' \
'set -e' \
'role_file=/tmp/lethe-role' \
'cmd=${1:-serve}' \
'[ $# -gt 0 ] && shift' \
'case "$cmd" in' \
'  serve)' \
'    echo serve > "$role_file"' \
'    export LETHE_METRICS_LISTEN="${LETHE_METRICS_LISTEN-0.0.0.0:9464}"' \
'    exec lethe serve "$@" ;;' \
'  worker)' \
'    echo worker > "$role_file"' \
'    export LETHE_METRICS_LISTEN="${LETHE_METRICS_LISTEN-0.0.0.0:9465}"' \
'    exec lethe-worker "$@" ;;' \
'  migrate|admin|version|--help)' \
'    exec lethe "$cmd" "$@" ;;' \
'  lethectl)' \
'    exec lethectl "$@" ;;' \
'  healthcheck)' \
'    role=$(cat "$role_file" 2>/dev/null || true)' \
'    if [ "$role" = serve ]; then' \
'      port=${LETHE_LISTEN##*:}' \
'      # TLS (the server serves plaintext on loopback only): lethectl trusts' \
'      # LETHE_TLS_CA, else the (self-signed) certificate itself.' \
'      if [ -n "${LETHE_TLS_CERT:-}" ] && [ -z "${LETHE_TLS_CA:-}" ]; then' \
'        export LETHE_TLS_CA="$LETHE_TLS_CERT"' \
'      fi' \
'      exec lethectl health --addr "127.0.0.1:${port:-50051}" --timeout 3 $LETHE_HEALTHCHECK_FLAGS' \
'    fi' \
'    exit 0 ;;' \
'  *)' \
'    exec "$cmd" "$@" ;;' \
'esac' \
      > /opt/lethe/bin/lethe-entrypoint; \
    chmod 0755 /opt/lethe/bin/lethe-entrypoint; \
    sh -n /opt/lethe/bin/lethe-entrypoint

# -------------------------------------------------------------- runtime ---
FROM ${BASE_IMAGE} AS runtime

ARG TORCH=cpu
ARG VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="lethe" \
      org.opencontainers.image.description="Machine unlearning as a service: gRPC server, worker, migrations, admin commands and lethectl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm" \
      org.opencontainers.image.documentation="docs/deploy-container.md" \
      io.lethe.torch="${TORCH}"

# Only the shared libraries the three binaries load (their DT_NEEDED
# entries mapped with dpkg -S; apt brings the rest). Not
# `install-deps.sh --runtime`: that also installs the PostgreSQL server,
# the Fashion-MNIST data set and tools a local demo needs, not a container.
#   lethe:        libgrpc++1.51 libgrpc29 libabsl20220623 libpqxx-6.4 libssl3
#                 libprometheus-cpp-core1.0 libprotobuf32 zlib1g
#   lethe-worker: the above (less gRPC) and LibTorch: libtorch1.13, with
#                 OpenBLAS (else apt picks the reference libblas3);
#                 lethe-engine, its sandboxed engine process: libseccomp2,
#                 and bubblewrap for --engine-isolation=namespaces
#   lethectl:     gRPC, protobuf, abseil, libssl3
# The CUDA variant takes LibTorch (and its CUDA libraries) from the zip.
RUN set -eux; \
    pkgs="ca-certificates libgrpc++1.51 libgrpc29 libabsl20220623 libpqxx-6.4 \
          libssl3 libprometheus-cpp-core1.0 libprotobuf32 zlib1g \
          libseccomp2 bubblewrap"; \
    if [ "$TORCH" = cpu ]; then \
      pkgs="$pkgs libtorch1.13 libopenblas0-pthread"; \
    else \
      pkgs="$pkgs libgomp1"; \
    fi; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    groupadd --system --gid 10001 lethe; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/lethe \
      --create-home --shell /usr/sbin/nologin lethe

COPY --from=build /opt/libtorch/lib /opt/libtorch/lib
COPY --from=build /opt/lethe/bin /opt/lethe/bin

ENV PATH=/opt/lethe/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LD_LIBRARY_PATH=/opt/libtorch/lib \
    LETHE_LISTEN=0.0.0.0:50051 \
    LETHE_SECRETS_FILE=/run/secrets/lethe-subject-secret \
    OMP_WAIT_POLICY=PASSIVE \
    LETHE_ENGINE_ISOLATION=process
# The engine sandbox (docs/security.md): container runtimes' default seccomp
# profiles refuse the user namespaces bubblewrap needs, so the image confines
# each engine process with limits and seccomp inside the container's own
# namespaces. Where the runtime allows user namespaces, set
# LETHE_ENGINE_ISOLATION=namespaces for bubblewrap's tighter view.
# No NVIDIA_VISIBLE_DEVICES here: set in the image, it would hand every GPU
# of a node whose default runtime is NVIDIA's to any lethe container. The
# device plugin (Kubernetes) or `--gpus` (docker) sets it for containers
# that asked for a GPU.

# Every process fails fast if a dependency is missing.
RUN lethe version && lethe-worker --help >/dev/null && lethectl --help >/dev/null \
    && test -x /opt/lethe/bin/lethe-engine

USER 10001:10001
WORKDIR /var/lib/lethe

# gRPC; server metrics; worker metrics (plain HTTP, keep them private).
EXPOSE 50051 9464 9465

# Serving replicas: grpc.health.v1 Check on LETHE_LISTEN's port (SERVING
# only while PostgreSQL is reachable), over TLS when LETHE_TLS_CERT is set.
# `lethe serve` needs LETHE_TLS_CERT and LETHE_TLS_KEY (or
# LETHE_INSECURE_PLAINTEXT on a loopback LETHE_LISTEN): the image listens on
# every interface. Other commands: always healthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["lethe-entrypoint", "healthcheck"]

# `lethe serve` and `lethe-worker` exit on SIGTERM after their grace/drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["lethe-entrypoint"]
CMD ["serve"]
