#!/usr/bin/python3
"""Prints the engine reports of a model's versions (lethectl model versions
--json on stdin) in plain words: method, guarantee, metrics before/after."""
import json
import sys

NAMES = (("ua", "forget error (UA)"), ("ra", "retain accuracy"),
         ("ta", "test accuracy"), ("mia_auc", "MIA AUC"))

for line in sys.stdin:
    for v in json.loads(line).get("versions", []):
        if not v.get("reportJson"):
            continue
        r = json.loads(v["reportJson"])
        removed = v.get("recordsRemoved", 0)
        absorbed = len(v.get("erasureIds", []))
        print(f"version {v['version']}: method {r['method']} ({r['guarantee']}), "
              f"{removed} records removed, absorbed {absorbed} requests")
        before, after = r["before"], r["after"]
        for key, name in NAMES:
            print(f"   {name:18s} before {before[key]:.4f}  after {after[key]:.4f}")
        for attempt in r.get("attempts", []):
            print(f"   tried {attempt['method']}: {attempt['outcome']} "
                  f"{attempt.get('reason', '')}".rstrip())
        break  # the newest version with a report
