#!/usr/bin/env bash
# Builds lethe's container image with podman from a Debian bookworm base made
# here with debootstrap (no image registry needed, only Debian's apt
# repository), then runs the image's commands once. The steps and the
# results measured with it are in docs/deploy-container.md.
#
#   scripts/container-build-check.sh [--context DIR] [--tag TAG] [--jobs N]
#                                    [--rebase] [--build-arg K=V ...]
#
#   --context DIR   build context (default: the repository root)
#   --tag TAG       image name (default: localhost/lethe:check)
#   --jobs N        compile jobs inside the build (default: 2)
#   --rebase        debootstrap the base again even if debian:bookworm exists
#   --build-arg     passed to podman build (e.g. TORCH=cuda LIBTORCH_ZIP=...)
#   --no-live       skip step 6 (the image against a real PostgreSQL)
#
# Needs root (apt-get, debootstrap, podman). Writes its log, the base's
# root file system and timings under ${LETHE_CTR_WORK:-/tmp/lethe-ctr}.
#
# Sandboxes: crun refuses a hybrid cgroup v1/v2 host ("cgroups in hybrid
# mode not supported"), so on such a host the script has podman use runc;
# and it sets explicit ulimits because podman's defaults (raised to the
# hard limits) fail without CAP_SYS_RESOURCE ("setrlimit RLIMIT_NPROC:
# Operation not permitted"). Both go into a containers.conf named by
# CONTAINERS_CONF, so every podman call below (init-secrets.sh's too) gets
# them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
context=$root
tag=localhost/lethe:check
jobs=2
rebase=0
live=1
build_args=()
while (($#)); do
  case $1 in
    --context) context=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --rebase) rebase=1; shift ;;
    --build-arg) build_args+=(--build-arg "$2"); shift 2 ;;
    --no-live) live=0; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
work=${LETHE_CTR_WORK:-/tmp/lethe-ctr}
mkdir -p "$work"
log() { echo "=== container-build-check: $*"; }

# 1. Tools: podman, debootstrap, runc (for hybrid-cgroup hosts).
need=()
for p in podman debootstrap runc uidmap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
fi

# 2. Base image debian:bookworm from debootstrap (minbase), with this
#    machine's Debian apt sources (bookworm, -updates, -security).
if ((rebase)) || ! podman image exists localhost/debian:bookworm; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $mirror ]] || mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
  rootfs=$work/rootfs
  rm -rf "$rootfs"
  log "debootstrap bookworm from the host's Debian mirror into $rootfs"
  start=$SECONDS
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import - debian:bookworm >/dev/null
  log "base imported in $((SECONDS - start)) s: $(podman image ls --format '{{.Size}}' localhost/debian:bookworm)"
fi

# 3. The OCI runtime and limits this host allows.
nofile=$(ulimit -Hn); ((nofile > 65536)) && nofile=65536
{
  echo '[containers]'
  echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=4096:4096\"]"
  if [[ -d /sys/fs/cgroup/unified ]] && mount | grep -q ' /sys/fs/cgroup/unified type cgroup2'; then
    printf '[engine]\nruntime = "runc"\n'   # hybrid cgroups: crun refuses them
  fi
} >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf

# 4. Build (docker format: OCI images have no HEALTHCHECK).
log "podman build -t $tag (context $context, -j$jobs); log: $work/build.log"
start=$SECONDS
if ! podman build --format docker --pull=never --build-arg JOBS="$jobs" \
    --build-arg REVISION="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "${build_args[@]}" -t "$tag" -f "$context/Dockerfile" "$context" \
    >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log"
  log "BUILD FAILED after $((SECONDS - start)) s"
  exit 1
fi
build_s=$((SECONDS - start))
size=$(podman image ls --format '{{.Size}}' "$tag")
log "built in ${build_s} s; image size $size"
echo "build_seconds=$build_s size=$size" >"$work/result.txt"

# 5. Run the image's commands (no database here: only what needs none).
run() { podman run --rm "$tag" "$@" 2> >(grep -v 'systemd' >&2); }
log "podman run: lethe --help, lethe-worker --help, lethectl health --help, id"
run --help | head -3
run worker --help | head -1
run lethectl health --help | head -1
run id
run sh -c 'ls /opt/lethe/bin && cat /etc/debian_version'
podman image inspect "$tag" --format 'user={{.Config.User}} entrypoint={{.Config.Entrypoint}} cmd={{.Config.Cmd}} ports={{.Config.ExposedPorts}} health={{.Config.Healthcheck}}' || true

# 6. Live: PostgreSQL on this machine (scripts/pg-local.sh), the secrets
#    from deploy/compose/init-secrets.sh, then migrate, admin create-key,
#    serve with its HEALTHCHECK (SERVING, then NOT_SERVING without the
#    database), and a worker stopped with SIGTERM.
if ((live)); then
  live_dir=$work/live
  rm -rf "$live_dir"; mkdir -p "$live_dir"
  cp "$root/deploy/compose/init-secrets.sh" "$live_dir/"
  "$live_dir/init-secrets.sh" --engine podman --image "$tag"
  s=$live_dir/secrets
  "$root/scripts/install-deps.sh" --runtime >/dev/null
  "$root/scripts/pg-local.sh" start "$live_dir/pg" >/dev/null
  url=$("$root/scripts/pg-local.sh" url "$live_dir/pg")
  port=$((20000 + RANDOM % 20000))
  args=(--network host -e LETHE_DATABASE_URL="$url"
        -e PGPASSFILE=/run/secrets/lethe-pgpass
        -v "$s/lethe-pgpass:/run/secrets/lethe-pgpass:ro")
  # The server: TLS, the public key; no signing key (workers sign).
  serve_args=(-e LETHE_TLS_CERT=/run/secrets/lethe-tls-cert
              -e LETHE_TLS_KEY=/run/secrets/lethe-tls-key
              -e LETHE_TLS_CA=/run/secrets/lethe-tls-ca
              -e LETHE_PUBLIC_KEYS=/run/secrets/lethe-signing-pub
              -v "$s/lethe-subject-secret:/run/secrets/lethe-subject-secret:ro"
              -v "$s/lethe-tls.crt:/run/secrets/lethe-tls-cert:ro"
              -v "$s/lethe-tls.key:/run/secrets/lethe-tls-key:ro"
              -v "$s/lethe-ca.crt:/run/secrets/lethe-tls-ca:ro"
              -v "$s/lethe-signing.pub:/run/secrets/lethe-signing-pub:ro")
  cleanup_live() {
    podman rm -f lethe-check-serve lethe-check-worker >/dev/null 2>&1 || true
    "$root/scripts/pg-local.sh" stop "$live_dir/pg" >/dev/null 2>&1 || true
  }
  trap cleanup_live EXIT
  q() { "$@" 2> >(grep -v 'systemd' >&2); }
  log "live: migrate, admin create-key"
  q podman run --rm "${args[@]}" "$tag" migrate
  q podman run --rm "${args[@]}" "$tag" admin create-key --role auditor --description check >/dev/null
  log "live: serve on 127.0.0.1:$port"
  q podman run -d --name lethe-check-serve "${args[@]}" "${serve_args[@]}" -e LETHE_LISTEN="127.0.0.1:$port" \
    -e LETHE_METRICS_LISTEN= "$tag" serve >/dev/null
  for _ in $(seq 30); do
    q podman healthcheck run lethe-check-serve >/dev/null && break
    sleep 1
  done
  if ! q podman healthcheck run lethe-check-serve; then
    q podman logs lethe-check-serve | tail -5
    log "live: FAILED: HEALTHCHECK not healthy"; exit 1
  fi
  log "live: HEALTHCHECK healthy"
  q podman exec lethe-check-serve lethectl --addr "127.0.0.1:$port" --tls-ca /run/secrets/lethe-tls-ca health
  "$root/scripts/pg-local.sh" stop "$live_dir/pg" >/dev/null
  sleep 3
  if q podman healthcheck run lethe-check-serve; then
    log "live: FAILED: still healthy without PostgreSQL"; exit 1
  fi
  log "live: HEALTHCHECK unhealthy without PostgreSQL, as it should be"
  q podman exec lethe-check-serve lethectl --addr "127.0.0.1:$port" --tls-ca /run/secrets/lethe-tls-ca health || echo "lethectl health exit $?"
  "$root/scripts/pg-local.sh" start "$live_dir/pg" >/dev/null
  url=$("$root/scripts/pg-local.sh" url "$live_dir/pg")
  log "live: worker"
  q podman run -d --name lethe-check-worker --network host -e LETHE_DATABASE_URL="$url" \
    -e LETHE_METRICS_LISTEN= -e LETHE_THREADS=2 "$tag" worker >/dev/null
  sleep 5
  start=$SECONDS
  q podman stop -t 40 lethe-check-worker >/dev/null
  q podman logs lethe-check-worker | tail -2
  log "live: worker stopped in $((SECONDS - start)) s, exit $(podman inspect lethe-check-worker --format '{{.State.ExitCode}}' 2>/dev/null)"
fi
log "ok"
