#!/usr/bin/env bash
# Offline validation of deploy/k8s (ctest: k8s_manifests, label integration).
#
#   tests/deploy/check_k8s.sh SOURCE_DIR VALIDATE_DIR
#
# 1. Installs the pinned validators (tests/deploy/package-lock.json) with
#    `npm ci` into VALIDATE_DIR, when missing or outdated.
# 2. Renders overlays/cpu, overlays/gpu and the Secret templates with every
#    kubectl in $LETHE_KUBECTL (space-separated paths or names; default:
#    kubectl), e.g. LETHE_KUBECTL="kubectl /tmp/kc/usr/bin/kubectl" to check
#    kustomize v5 and Debian's kubectl 1.20 (kustomize v2.0.3) together.
# 3. Validates every rendered object against the Kubernetes schemas, rejects
#    unknown fields, and checks lethe's invariants (validate.cjs); with more
#    than one kubectl, checks that they render the same objects.
# 4. Negative cases: each file or folder in tests/deploy/testdata must be
#    rejected, with every message its `# expect:` lines name.
#
# Any missing tool (kubectl, node, npm) is a failure, not a skip.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 SOURCE_DIR VALIDATE_DIR" >&2; exit 2; }
src=$(cd "$1" && pwd)
dir=$2
here=$src/tests/deploy
k8s=$src/deploy/k8s

fail() { echo "check_k8s: FAIL: $*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------
read -r -a kubectls <<<"${LETHE_KUBECTL:-kubectl}"
for k in "${kubectls[@]}"; do
  command -v "$k" >/dev/null ||
    fail "kubectl '$k' not found (Debian: apt-get install kubernetes-client)"
done
command -v node >/dev/null || fail "node not found (Debian: apt-get install nodejs)"
command -v npm >/dev/null || fail "npm not found (Debian: apt-get install npm)"

# --- validators -----------------------------------------------------------------
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if ! cmp -s "$here/package-lock.json" "$dir/.installed-lock" ||
   [ ! -d "$dir/node_modules" ]; then
  echo "== npm ci into $dir"
  rm -f "$dir/.installed-lock"
  cp "$here/package.json" "$here/package-lock.json" "$here/.npmrc" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
    fail "npm ci failed in $dir"
  cp "$here/package-lock.json" "$dir/.installed-lock"
fi
# Run from VALIDATE_DIR so that require() finds its node_modules.
cp "$here/validate.cjs" "$dir/validate.cjs"
validate() { node "$dir/validate.cjs" "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

render() {  # render KUBECTL KUSTOMIZATION_DIR OUT
  if ! "$1" kustomize "$2" >"$3" 2>"$3.err"; then
    cat "$3.err" >&2
    fail "$1 kustomize $2 failed"
  fi
  # kustomize v5 warns that `bases`/`patchesStrategicMerge` are deprecated
  # (kept for kustomize v2.0.3); anything else on stderr is shown.
  grep -v "is deprecated" "$3.err" >&2 || true
}

# --- render and validate with each kubectl --------------------------------------
i=0
for k in "${kubectls[@]}"; do
  out=$work/$i
  mkdir -p "$out"
  echo "== $k: $("$k" version --client 2>/dev/null | head -n 1)"
  render "$k" "$k8s/overlays/cpu" "$out/cpu.yaml"
  render "$k" "$k8s/overlays/gpu" "$out/gpu.yaml"
  render "$k" "$k8s/secrets" "$out/secrets.yaml"
  validate check --source "$src" \
    cpu="$out/cpu.yaml" gpu="$out/gpu.yaml" secrets="$out/secrets.yaml" ||
    fail "the manifests rendered by $k are not valid"
  if [ "$i" -gt 0 ]; then
    for r in cpu gpu secrets; do
      echo -n "$r, ${kubectls[0]} vs $k: "
      validate compare "$work/0/$r.yaml" "$out/$r.yaml" ||
        fail "${kubectls[0]} and $k render $r differently"
    done
  fi
  i=$((i + 1))
done

# --- negative cases ---------------------------------------------------------------
# A case passes only if the check rejects it (exit status 1: not a pass, not
# a crash) and reports every `# expect:` line of the case.
rejected() {  # rejected NAME SPEC_FILE OUTPUT RC
  [ "$4" -eq 1 ] || { cat "$3"; fail "negative case $1: exit $4, want 1"; }
  local want expects=0
  while IFS= read -r want; do
    expects=$((expects + 1))
    grep -qF -- "$want" "$3" || {
      cat "$3"
      fail "negative case $1 was rejected, but not for: $want"
    }
  done < <(sed -n 's/^# expect: //p' "$2")
  [ $expects -gt 0 ] || fail "negative case $1 has no '# expect:' line"
  echo "negative case $1: rejected, with the $expects expected errors"
}
negatives=0
for case in "$here"/testdata/*; do
  name=$(basename "$case")
  if [ -d "$case" ]; then
    # An overlay: rendered by each kubectl, checked as a gpu overlay.
    i=0
    for k in "${kubectls[@]}"; do
      render "$k" "$case" "$work/$name.$i.yaml"
      rc=0
      validate check --source "$src" gpu="$work/$name.$i.yaml" \
        secrets="$work/0/secrets.yaml" >"$work/$name.$i.out" 2>&1 || rc=$?
      rejected "$name ($k)" "$case/kustomization.yaml" "$work/$name.$i.out" $rc
      i=$((i + 1))
    done
  else
    # Plain objects: schemas and field names only.
    rc=0
    validate check testdata="$case" >"$work/$name.out" 2>&1 || rc=$?
    rejected "$name" "$case" "$work/$name.out" $rc
  fi
  negatives=$((negatives + 1))
done
[ $negatives -gt 0 ] || fail "no negative case in $here/testdata"

echo "k8s manifests: ${#kubectls[@]} kubectl(s), 3 renders each, $negatives negative cases: OK"
