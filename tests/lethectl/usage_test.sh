#!/usr/bin/env bash
# lethectl's usage errors, which it reports before any call (exit 2, a
# message naming the flag and a pointer to --help): base/flags.h's parser
# rules and lethectl's own enum and time reads. No server is needed; the
# address is one nothing listens on, so a call made by mistake fails fast.
set -euo pipefail
ctl=${1:?usage: usage_test.sh LETHECTL}
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE PATTERN ARGS...: lethectl exits CODE and its stderr matches.
expect() {
  local code=$1 pattern=$2 got=0
  shift 2
  "$ctl" --addr 127.0.0.1:1 --timeout 2 "$@" >/dev/null 2>"$tmp" || got=$?
  [[ $got == "$code" ]] || fail "lethectl $*: exit $got, not $code: $(cat "$tmp")"
  grep -qF -- "$pattern" "$tmp" || fail "lethectl $*: no '$pattern' in: $(cat "$tmp")"
}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

"$ctl" --help | grep -q "Flags of every command" || fail "--help"
"$ctl" submit --help | grep -q -- "--legal-ground" || fail "submit --help"

expect 2 "unknown flag '--nope'" list --nope
expect 2 "unknown flag '-x' (flags start with --)" list -x
expect 2 "--page-size needs a value: --page-size N" list --page-size
expect 2 "--json takes no value (other than =true or =false)" list --json=yes
expect 2 "--state given more than once" list --state done --state failed
expect 2 "--page-size must be an integer in [1, 1000], not '0'" list --page-size 0
expect 2 "--state must be one of" list --state bogus
expect 2 "--after must be an RFC 3339 time" list --after yesterday
expect 2 "--legal-ground must be one of" submit --subject s --legal-ground nope
expect 2 "run 'lethectl list --help' for usage" list --nope
expect 2 "expected: lethectl get ID" get
echo PASS
