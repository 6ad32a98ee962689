#!/usr/bin/env python3
"""Closed % of the do-nothing gap against speed-up over retraining, one
marker per method row of every engine-<scenario>.json in RESULTS, as a
hand-written SVG (no matplotlib on the build machines).

  plot.py RESULTS_DIR OUT.svg
"""
import glob
import json
import math
import os
import sys

W, H, L, R, T, B = 900, 560, 70, 260, 40, 60
YMIN, YMAX = -100.0, 110.0
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def points(results, quick):
    pts = []
    for path in sorted(glob.glob(os.path.join(results, "engine-*.json"))):
        if path.endswith("-quick.json") != quick:
            continue
        with open(path) as f:
            d = json.load(f)
        if d["scenario"] in ("certified", "sisa"):
            continue  # no closed-% column: compared with their own references
        for req in d["requests"]:
            series = f'{d["scenario"]} {req["request"]}'
            for row in req["rows"]:
                if row.get("ok") and row["guarantee"] != "none" and \
                        not row["label"].startswith("retrain") and row["speedup"] > 0:
                    pts.append((series, row["label"], row["speedup"],
                                row["closed_pct"]))
    return pts


def main():
    results, out = sys.argv[1], sys.argv[2]
    pts = points(results, out.endswith("-quick.svg"))
    if not pts:
        sys.exit("plot.py: no results in " + results)
    xmin = min(0.5, min(p[2] for p in pts))
    xmax = max(200.0, max(p[2] for p in pts))
    lx0, lx1 = math.log10(xmin), math.log10(xmax)
    pw, ph = W - L - R, H - T - B

    def sx(v):
        return L + (math.log10(v) - lx0) / (lx1 - lx0) * pw

    def sy(v):
        v = max(YMIN, min(YMAX, v))
        return T + (YMAX - v) / (YMAX - YMIN) * ph

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         'font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="20" font-size="14">lethe engine benchmark: gap to '
         'retraining closed vs speed-up (Fashion-MNIST, 2 threads)</text>']
    for v in (-100, -50, 0, 50, 95, 100):
        y = sy(v)
        o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" '
                 f'stroke="#ccc" stroke-dasharray="{"4,3" if v == 95 else "none"}"/>')
        o.append(f'<text x="{L - 8}" y="{y + 4:.1f}" text-anchor="end">{v}</text>')
    for v in (0.5, 1, 2, 4, 10, 20, 50, 100, 200, 500, 1000):
        if xmin <= v <= xmax:
            x = sx(v)
            o.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" '
                     f'stroke="#ccc" stroke-dasharray="{"4,3" if v in (4, 10) else "none"}"/>')
            o.append(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{v}x</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 15}" text-anchor="middle">speed-up over '
             'retraining (same run, log scale)</text>')
    o.append(f'<text x="18" y="{T + ph / 2}" transform="rotate(-90 18 {T + ph / 2})" '
             'text-anchor="middle">closed % of the do-nothing gap (clamped to -100)</text>')
    series = sorted({p[0] for p in pts})
    for i, s in enumerate(series):
        c = COLORS[i % len(COLORS)]
        y = T + 10 + 16 * i
        o.append(f'<circle cx="{L + pw + 20}" cy="{y}" r="4" fill="{c}"/>')
        o.append(f'<text x="{L + pw + 30}" y="{y + 4}">{s}</text>')
        for _, label, sp, closed in (p for p in pts if p[0] == s):
            x, y = sx(sp), sy(closed)
            shape = (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{c}"/>'
                     if label.startswith(("default", "sisa")) else
                     f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}" fill-opacity="0.8"/>')
            o.append(f'<g><title>{s}: {label}: {closed:.1f}% at {sp:.1f}x</title>{shape}</g>')
    y = T + 10 + 16 * len(series) + 10
    o.append(f'<text x="{L + pw + 10}" y="{y}">circle: approximate method</text>')
    o.append(f'<text x="{L + pw + 10}" y="{y + 16}">square: default policy, SISA</text>')
    o.append(f'<text x="{L + pw + 10}" y="{y + 32}">dashed: 95 %, 4x, 10x targets</text>')
    o.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(o) + "\n")
    print(f"plot.py: wrote {out} ({len(pts)} points)")


if __name__ == "__main__":
    main()
