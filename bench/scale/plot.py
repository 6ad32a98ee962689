#!/usr/bin/env python3
"""Log-log SVG plots of the scale benchmark's figures (issue 19).

    bench/scale/plot.py docs/figures/scale.csv docs/figures

The CSV holds one measured point a row: figure,series,x,y (x and y > 0);
lines starting with # are comments (where each figure was measured). Each
figure becomes FIGURE.svg in the output folder: one line a series, axes in
decades, and beside each series its growth exponent (the slope of log y
over log x between its first and last points: 0 constant, 1 linear).

Plain SVG written here: no plotting library to install.
"""
import csv
import math
import sys
from collections import OrderedDict

# What each figure is: title, x label, y label.
FIGURES = {
    "upload_rate": ("Upload rate", "records in the upload", "records / s"),
    "intake_latency": ("SubmitErasure latency (steady state)",
                       "records in the table", "ms"),
    "dataset_get": ("GetDataset", "records in the dataset", "seconds"),
    "worker_memory": ("Worker and engine memory, one training run",
                      "records in the training set", "peak RSS, MB"),
    "worker_time": ("Worker time, one run", "records in the training set",
                    "seconds"),
    "models_per_dataset": ("One request, models on its dataset (70k records)",
                           "models", "seconds / MB"),
    "artifact_memory": ("Memory moving a model file",
                        "model file, MB", "peak RSS, MB"),
    "artifact_time": ("Time moving a model file", "model file, MB",
                      "seconds"),
}
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
W, H = 780, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 300, 40, 55


def decades(lo, hi):
    """Powers of ten spanning [lo, hi]."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if a == b:
        b += 1
    return a, b


def label(exp):
    v = 10 ** exp
    if exp >= 6:
        return f"{v // 10**6:g}M" if exp < 9 else f"1e{exp}"
    if exp >= 3:
        return f"{v // 1000:g}k"
    return f"{v:g}"


def gridline(x1, y1, x2, y2, tx, ty, anchor, exp):
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="#ddd"/><text x="{tx:.1f}" y="{ty:.1f}" '
            f'text-anchor="{anchor}">{label(exp)}</text>')


def plot(name, series, out):
    title, xl, yl = FIGURES.get(name, (name, "x", "y"))
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    xa, xb = decades(min(xs), max(xs))
    ya, yb = decades(min(ys), max(ys))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return LEFT + (math.log10(x) - xa) / (xb - xa) * pw

    def py(y):
        return TOP + ph - (math.log10(y) - ya) / (yb - ya) * ph

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{LEFT}" y="22" font-size="15">{title}</text>']
    # A grid line and its label at every decade of each axis.
    for e in range(xa, xb + 1):
        x = px(10 ** e)
        s.append(gridline(x, TOP, x, TOP + ph, x, TOP + ph + 16, "middle", e))
    for e in range(ya, yb + 1):
        y = py(10 ** e)
        s.append(gridline(LEFT, y, LEFT + pw, y, LEFT - 6, y + 4, "end", e))
    s.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" '
             f'fill="none" stroke="#333"/>')
    s.append(f'<text x="{LEFT + pw / 2}" y="{H - 12}" '
             f'text-anchor="middle">{xl} (log)</text>')
    s.append(f'<text transform="translate(16 {TOP + ph / 2}) rotate(-90)" '
             f'text-anchor="middle">{yl} (log)</text>')
    for i, (sname, pts) in enumerate(series.items()):
        c = COLOURS[i % len(COLOURS)]
        pts = sorted(pts)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        s.append(f'<polyline points="{path}" fill="none" stroke="{c}" '
                 f'stroke-width="2"/>')
        for x, y in pts:
            s.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" '
                     f'fill="{c}"/>')
        slope = ""
        if len(pts) > 1 and pts[-1][0] != pts[0][0]:
            k = (math.log(pts[-1][1]) - math.log(pts[0][1])) / \
                (math.log(pts[-1][0]) - math.log(pts[0][0]))
            slope = f" (slope {round(k, 2) + 0.0:.2f})"
        ly = TOP + 14 + 18 * i
        s.append(f'<line x1="{LEFT + pw + 10}" y1="{ly - 4}" '
                 f'x2="{LEFT + pw + 28}" y2="{ly - 4}" stroke="{c}" '
                 f'stroke-width="2"/>')
        s.append(f'<text x="{LEFT + pw + 32}" y="{ly}" font-size="11">'
                 f'{sname}{slope}</text>')
    s.append("</svg>")
    with open(f"{out}/{name}.svg", "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    figures = OrderedDict()
    with open(sys.argv[1]) as f:
        rows = csv.reader(l for l in f if l.strip() and not l.startswith("#"))
        for fig, series, x, y in rows:
            if fig == "figure":
                continue  # the header
            x, y = float(x), float(y)
            if x <= 0 or y <= 0:
                sys.exit(f"plot.py: {fig}/{series}: x and y must be > 0")
            figures.setdefault(fig, OrderedDict()).setdefault(
                series, []).append((x, y))
    for name, series in figures.items():
        plot(name, series, sys.argv[2])
        print(f"{sys.argv[2]}/{name}.svg")


if __name__ == "__main__":
    main()
