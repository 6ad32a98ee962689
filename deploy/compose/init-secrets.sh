#!/usr/bin/env bash
# Creates the secrets of the compose deployment in deploy/compose/secrets/,
# with lethe's own commands run from the lethe image (build it first:
# `docker compose -f deploy/compose/compose.yaml build`):
#
#   lethe-subject-secret    `lethe admin create-secret`: the key of
#                           HMAC(secret, subject id). Losing it makes
#                           stored subject keys unmatchable: back it up.
#   lethe-signing.key/.pub  `lethe admin create-signing-key`: the workers
#                           sign certificates and log checkpoints with the
#                           .key; the servers serve the .pub; give the .pub
#                           to auditors.
#   lethe-ca.crt/.key       a CA made with openssl (on this machine) for
#                           the TLS below; clients trust lethe-ca.crt
#                           (lethectl --tls-ca). The CA key stays here.
#   lethe-tls.crt/.key      the servers' and Envoy's TLS certificate, for
#                           127.0.0.1, localhost, lethe-server and every
#                           --tls-name; envoy-tls.key is Envoy's copy of
#                           the key. Delete the three files and run this
#                           again to reissue (e.g. to add a name).
#   postgres-password       random; the PostgreSQL role `lethe` (the
#                           servers' and workers' runtime role)
#   lethe-pgpass            the same password as a libpq .pgpass line
#   postgres-owner-password random; `lethe_owner`, which owns the schema
#   lethe-owner-pgpass      its .pgpass line (lethe-migrate only)
#   postgres-superuser-password  random; `postgres`, used only to create
#                           the roles on PostgreSQL's first start
#   grafana-admin-password  random; Grafana's `admin`
#
# Files that exist are kept (run it again safely). Each file is owned by
# the user of the container that reads it (lethe 10001, postgres 999,
# grafana 472) with mode 0600.
#
#   deploy/compose/init-secrets.sh [--engine docker|podman] [--image IMAGE]
#                                  [--key-name NAME] [--tls-name DNS]...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-}
image=${LETHE_IMAGE:-localhost/lethe:latest}
key_name=${LETHE_KEY_NAME:-lethe-compose}
tls_names=(lethe-server localhost)
while (($#)); do
  case $1 in
    --engine) engine=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --key-name) key_name=$2; shift 2 ;;
    --tls-name) tls_names+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [[ -z $engine ]]; then
  if command -v docker >/dev/null; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else echo "init-secrets: needs docker or podman" >&2; exit 1; fi
fi
dir=$here/secrets
mkdir -p "$dir"
chmod 0700 "$dir"

# TLS: a CA (10 years) and a certificate it signs (825 days, the longest
# that clients accept), with openssl on this machine.
command -v openssl >/dev/null || { echo "init-secrets: needs openssl" >&2; exit 1; }
if [[ ! -f $dir/lethe-ca.crt ]]; then
  (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 3650 -subj "/CN=lethe compose CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/lethe-ca.key" -out "$dir/lethe-ca.crt" 2>/dev/null)
fi
if [[ ! -f $dir/lethe-tls.crt ]]; then
  san="IP:127.0.0.1"
  for n in "${tls_names[@]}"; do san+=",DNS:$n"; done
  (umask 077
   openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=lethe-server \
     -keyout "$dir/lethe-tls.key" -out "$dir/lethe-tls.csr" 2>/dev/null
   openssl x509 -req -in "$dir/lethe-tls.csr" -CA "$dir/lethe-ca.crt" -CAkey "$dir/lethe-ca.key" \
     -CAcreateserial -days 825 -out "$dir/lethe-tls.crt" \
     -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") 2>/dev/null
   cp "$dir/lethe-tls.key" "$dir/envoy-tls.key")
  rm -f "$dir/lethe-tls.csr" "$dir/lethe-ca.srl"
  echo "init-secrets: TLS certificate for $san"
fi

# As root inside the container only to hand each file to its reader's uid.
"$engine" run --rm --user 0 --entrypoint /bin/sh \
  -e KEY_NAME="$key_name" -v "$dir:/out:z" "$image" -c '
set -eu
cd /out
umask 077
random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n"; }
[ -f lethe-subject-secret ] || lethe admin create-secret --secrets-file lethe-subject-secret
[ -f lethe-signing.key ] || lethe admin create-signing-key --out lethe-signing --name "$KEY_NAME"
[ -f postgres-password ] || random > postgres-password
[ -f postgres-owner-password ] || random > postgres-owner-password
[ -f postgres-superuser-password ] || random > postgres-superuser-password
[ -f grafana-admin-password ] || random > grafana-admin-password
[ -f lethe-pgpass ] || printf "postgres:5432:lethe:lethe:%s\n" "$(cat postgres-password)" > lethe-pgpass
[ -f lethe-owner-pgpass ] || printf "postgres:5432:lethe:lethe_owner:%s\n" "$(cat postgres-owner-password)" > lethe-owner-pgpass
chown 10001:10001 lethe-subject-secret lethe-signing.key lethe-pgpass lethe-owner-pgpass lethe-tls.key
chown 999:999 postgres-password postgres-owner-password postgres-superuser-password
chown 472:0 grafana-admin-password
chown 101:101 envoy-tls.key
chmod 0600 lethe-subject-secret lethe-signing.key lethe-pgpass lethe-owner-pgpass \
  postgres-password postgres-owner-password postgres-superuser-password grafana-admin-password \
  lethe-tls.key envoy-tls.key lethe-ca.key
chmod 0644 lethe-signing.pub lethe-tls.crt lethe-ca.crt
'
echo "init-secrets: secrets in $dir (Grafana admin password: $dir/grafana-admin-password)"
