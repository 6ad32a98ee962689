#!/usr/bin/env python3
"""Checks that a lethe certificate is in the transparency log.

usage: verify_inclusion.py BUNDLE

Reads a certificate bundle (lethectl certificate get --bundle), recomputes
the certificate's leaf hash from the envelope bytes, SHA-256(0x00 ||
SHA-256(envelope)), and checks the bundle's inclusion proof against the root
hash of the bundle's checkpoint, with the algorithm of RFC 9162 section
2.1.3.2. Exit status 0 if the proof holds, 1 otherwise.

It checks no signature: the checkpoint's signature must be checked too (with
openssl, as scripts/audit-bundle.sh and docs/compliance.md show), or the
root it trusts could be anyone's. Python 3 standard library only.
"""
import base64
import hashlib
import json
import sys


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(envelope):
    return sha256(b"\x00" + sha256(envelope))


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def root_from_inclusion_proof(index, size, leaf, proof):
    """The root that `proof` yields for `leaf` at `index`, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None  # the proof is too long
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None  # sn != 0: the proof is too short


def parse_checkpoint_body(note):
    """(origin, size, root) from a C2SP signed note's checkpoint body."""
    body = note.split("\n\n", 1)[0]
    origin, size, root = body.split("\n")
    return origin, int(size), base64.b64decode(root, validate=True)


def main(path):
    with open(path, encoding="utf-8") as f:
        bundle = json.load(f)
    envelope = bundle["envelope"].encode("utf-8")
    index, size = bundle["leafIndex"], bundle["treeSize"]
    proof = [base64.b64decode(h, validate=True)
             for h in bundle["inclusionProof"]]
    origin, cp_size, root = parse_checkpoint_body(bundle["checkpoint"])
    leaf = leaf_hash(envelope)
    print("checkpoint: %s, tree size %d, root %s" % (origin, cp_size,
                                                     root.hex()))
    print("leaf %d: %s (recomputed from the envelope bytes)" % (index,
                                                               leaf.hex()))
    if cp_size != size:
        print("FAILED: the bundle's treeSize %d is not the checkpoint's %d"
              % (size, cp_size))
        return 1
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        print("FAILED: the inclusion proof does not lead to the checkpoint's "
              "root")
        return 1
    print("OK: the certificate is leaf %d of the tree of %d leaves" % (index,
                                                                       size))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    try:
        sys.exit(main(sys.argv[1]))
    except (KeyError, ValueError, TypeError) as e:
        print("FAILED: malformed bundle: %r" % (e,))
        sys.exit(1)
