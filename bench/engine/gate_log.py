#!/usr/bin/env python3
"""Re-reads gate_bench logs: how often the gate rejects the original model,
by how far the original's statistics are from the exact retrain's.

gate_bench calls a request "distinguishable" when the original's accuracy
or confidence rank differs from the retrain's by more than half the gate's
interval (its noise radius r). Both are single models, each with the null's
spread, so the difference of two models from the same null already has
sqrt(2) times that spread; and a retrain at the edge of its interval with
an original r beyond it is still inside the interval about half the time.
This script prints, per request kind, the share of originals rejected among
requests whose difference exceeds c * r, for the given factors c
(1 is gate_bench's own definition), mean and range over seeds.

    bench/engine/gate_log.py LOG [--factors 1,1.414,2]
"""

import argparse
import re
import sys

STAT = re.compile(r"\(acc ([-\d.]+) in \[([-\d.]+), ([-\d.]+)\], "
                  r"conf ([-\d.]+) in \[([-\d.]+), ([-\d.]+)\]\)")
REQUEST = re.compile(r"^  (single|group) \d+: ")
SEED = re.compile(r"^seed (\d+): trained")


def parse(path):
    """(seed, kind, exact stats, original stats, original rejected)."""
    seed = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = SEED.match(line)
            if m:
                seed = int(m.group(1))
                continue
            m = REQUEST.match(line)
            if not m or seed is None:
                continue
            stats = STAT.findall(line)
            if len(stats) != 2:
                continue
            exact, original = ([float(x) for x in s] for s in stats)
            rejected = "original rejected (" in line
            yield seed, m.group(1), exact, original, rejected


def beyond(exact, original, factor):
    """Either statistic moved by more than factor * the original's radius."""
    for i in (0, 3):
        radius = (original[i + 2] - original[i + 1]) / 2
        if abs(original[i] - exact[i]) > factor * radius:
            return True
    return False


def spread(values):
    if not values:
        return "-"
    mean = sum(values) / len(values)
    return f"{mean:.1f} ({min(values):.1f}-{max(values):.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--factors", default="1,1.414,2")
    args = ap.parse_args()
    factors = [float(x) for x in args.factors.split(",")]
    rows = list(parse(args.log))
    if not rows:
        sys.exit(f"{args.log}: no gate_bench request lines")
    for kind in ("single", "group"):
        for factor in factors:
            share, rejected = [], []
            for seed in sorted({r[0] for r in rows}):
                mine = [r for r in rows if r[0] == seed and r[1] == kind]
                if not mine:
                    continue
                far = [r for r in mine if beyond(r[2], r[3], factor)]
                share.append(100.0 * len(far) / len(mine))
                if far:
                    rejected.append(100.0 * sum(r[4] for r in far) / len(far))
            if share:
                print(f"| {kind} | difference > {factor:g} r | requests "
                      f"{spread(share)}% | of those rejected "
                      f"{spread(rejected)}% |")


if __name__ == "__main__":
    main()
