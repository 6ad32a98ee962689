#!/bin/sh
# Checks a lethe certificate bundle with standard tools only: openssl (3.x),
# python3 (standard library) and coreutils. The walkthrough of
# docs/compliance.md, runnable:
#
#   scripts/audit-bundle.sh BUNDLE PUBKEY.pem
#
# 1. the DSSE envelope's Ed25519 signature, by PUBKEY, over
#    PAE = "DSSEv1 <len type> <type> <len body> <body>"
# 2. the statement: an in-toto Statement v1 with lethe's completion
#    predicate, whose subjects are the models' new digests
# 3. the checkpoint's Ed25519 signature (C2SP signed note), by PUBKEY
# 4. the leaf, recomputed from the envelope bytes, and its inclusion proof
#    under the checkpoint's root (scripts/verify_inclusion.py)
# 5. PUBKEY's validity window (its "# not-before/not-after" lines) covers
#    the completion time
#
# Exit status 0 only if every check holds. Prints the statement's predicate.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BUNDLE PUBKEY.pem" >&2
  exit 2
fi
bundle=$1
pub=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAILED: $*"
  exit 1
}

# The key as OpenSSL reads it (metadata lines before the PEM are skipped),
# and its ids: DSSE names it by SHA-256 of the raw 32-byte key.
openssl pkey -pubin -in "$pub" -out "$work/pub.pem" ||
  fail "$pub is not a public key PEM"
openssl pkey -pubin -in "$pub" -outform DER | tail -c 32 >"$work/pub.raw"
keyid=$(sha256sum "$work/pub.raw" | cut -d' ' -f1)
echo "key $keyid"

# Split the bundle into the exact bytes each check needs.
python3 - "$bundle" "$work" <<'EOF' || fail "the bundle is malformed"
import base64, json, os, sys
bundle = json.load(open(sys.argv[1], encoding="utf-8"))
out = sys.argv[2]
def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
envelope = json.loads(bundle["envelope"])
payload = base64.b64decode(envelope["payload"], validate=True)
ptype = envelope["payloadType"].encode()
write("payload.json", payload)
write("payload-type", ptype)
write("pae.bin", b"DSSEv1 %d %s %d %s" % (len(ptype), ptype,
                                          len(payload), payload))
for i, s in enumerate(envelope["signatures"]):
    write("dsse.%d.keyid" % i, s["keyid"].encode())
    write("dsse.%d.sig" % i, base64.b64decode(s["sig"], validate=True))
note = bundle["checkpoint"].encode("utf-8")
body, _, signatures = note.partition(b"\n\n")
write("checkpoint.body", body + b"\n")
for i, line in enumerate(signatures.split(b"\n")):
    if not line.startswith("\u2014 ".encode()):
        continue
    name, sig = line[len("\u2014 ".encode()):].split(b" ")
    raw = base64.b64decode(sig, validate=True)
    write("note.%d.name" % i, name)
    write("note.%d.sig" % i, raw[4:])  # after the 4-byte key id
EOF

echo "[1/5] DSSE envelope signature"
[ "$(cat "$work/payload-type")" = "application/vnd.in-toto+json" ] ||
  fail "payloadType is not application/vnd.in-toto+json"
ok=
for k in "$work"/dsse.*.keyid; do
  [ -e "$k" ] || break
  [ "$(cat "$k")" = "$keyid" ] || continue
  if openssl pkeyutl -verify -pubin -inkey "$work/pub.pem" -rawin \
      -in "$work/pae.bin" -sigfile "${k%.keyid}.sig" >/dev/null; then
    ok=1
  fi
done
[ -n "$ok" ] || fail "no envelope signature by key $keyid verifies"
echo "      OK: signed by $keyid"

echo "[2/5] statement"
python3 - "$work/payload.json" <<'EOF' || fail "the statement is not a lethe completion statement"
import json, sys
s = json.load(open(sys.argv[1], encoding="utf-8"))
assert s["_type"] == "https://in-toto.io/Statement/v1"
assert s["predicateType"] == "https://lethe.dev/unlearning-completion/v1"
p = s["predicate"]
expected = [{"digest": {"sha256": m["after"]["sha256"]},
             "name": "model/%s/v%d" % (m["modelId"], m["after"]["version"])}
            for m in p["models"]]
assert s["subject"] == expected, "subjects differ from the models' new versions"
for m in p["models"]:
    for c in m["metrics"]:
        met = (c["value"] <= c["threshold"] if c["bound"] == "at_most"
               else c["value"] >= c["threshold"])
        assert met, "metric %s did not meet its threshold" % c["name"]
EOF
echo "      OK: in-toto Statement v1, predicate unlearning-completion/v1"

echo "[3/5] checkpoint signature"
ok=
for s in "$work"/note.*.sig; do
  [ -e "$s" ] || break
  if openssl pkeyutl -verify -pubin -inkey "$work/pub.pem" -rawin \
      -in "$work/checkpoint.body" -sigfile "$s" >/dev/null; then
    ok=1
  fi
done
[ -n "$ok" ] || fail "no checkpoint signature by key $keyid verifies"
echo "      OK: $(head -n 1 "$work/checkpoint.body"), tree size" \
  "$(sed -n 2p "$work/checkpoint.body")"

echo "[4/5] inclusion in the log"
python3 "$here/verify_inclusion.py" "$bundle" | sed 's/^/      /'
# POSIX sh has no pipefail: run it again for its status.
python3 "$here/verify_inclusion.py" "$bundle" >/dev/null ||
  fail "the certificate is not in the signed log"

echo "[5/5] key validity at completion"
python3 - "$pub" "$work/payload.json" <<'EOF' || fail "the key was not valid when the erasure completed"
import datetime, json, sys
def when(text):
    return datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
bounds = {}
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("-----BEGIN"):
        break
    if line.startswith("#") and ":" in line:
        k, v = line[1:].split(":", 1)
        bounds[k.strip()] = v.strip()
p = json.load(open(sys.argv[2], encoding="utf-8"))["predicate"]
t = when(p["completedAt"])
assert "not-before" not in bounds or when(bounds["not-before"]) <= t
assert "not-after" not in bounds or t < when(bounds["not-after"])
print("      OK: completed %s, key valid %s .. %s" % (
    p["completedAt"], bounds.get("not-before", "unbounded"),
    bounds.get("not-after", "unbounded")))
EOF

echo
python3 - "$work/payload.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1], encoding="utf-8"))["predicate"]
print("Erasure request %s: submitted %s, completed %s" % (
    p["requestId"], p["submittedAt"], p["completedAt"]))
print("Legal ground: %s%s" % (p["legalGround"], " (%s)" % p["legalReference"]
                             if p["legalReference"] else ""))
print("Subject commitment: %s" % p["subjectCommitment"])
for m in p["models"]:
    g = m["guarantee"]
    print("Model %s: v%d (sha256 %s) -> v%d (sha256 %s)" % (
        m["modelId"], m["before"]["version"], m["before"]["sha256"],
        m["after"]["version"], m["after"]["sha256"]))
    print("  %d record(s) removed by %s; guarantee %s%s" % (
        m["recordsRemoved"], m["method"], g["class"],
        " (epsilon %g, delta %g)" % (g["epsilon"], g["delta"])
        if g["class"] == "certified" else ""))
    for c in m["metrics"]:
        print("  %s = %g (%s %g)" % (c["name"], c["value"],
                                     c["bound"].replace("_", " "),
                                     c["threshold"]))
EOF
echo
echo "ALL CHECKS PASSED"
