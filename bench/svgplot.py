# SPDX-License-Identifier: Apache-2.0
"""Plain SVG plots of a bench/compare.py result, with nothing but the standard library.

write_plots(result, directory, prefix) writes <prefix>-summary.svg (one row of bars per
measurement, each row scaled to its own largest value) and <prefix>-<key>-ramp.svg for the
ramped scenarios (offered vs achieved rate, per server); returns the file names.
"""
import html
import math
import os

COLORS = {"rankcast": "#1f6feb", "ws": "#d29922", "socketio": "#8250df"}
FONT = 'font-family="sans-serif" font-size="12"'


def _num(v):
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def summary_svg(result):
    rows = [(k, r) for k, r in result["results"].items()]
    names = ["rankcast", "ws", "socketio"]
    row_h, bar_h, left, width = 64, 16, 330, 420
    height = 40 + row_h * len(rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" {FONT} font-weight="bold">rankcast vs ws vs Socket.IO '
           f'({html.escape(result["stamp"])}); each row scaled to its largest value</text>']
    for i, (key, r) in enumerate(rows):
        y0 = 36 + i * row_h
        better = "higher is better" if r["better"] == "high" else "lower is better"
        out.append(f'<text x="10" y="{y0 + 14}" {FONT}>{html.escape(r["label"])}</text>')
        out.append(f'<text x="10" y="{y0 + 30}" {FONT} fill="#666">{better}</text>')
        vals = [r["servers"].get(n, {}).get("metrics", {}).get(r["metric"]) for n in names]
        finite = [v for v in vals if isinstance(v, (int, float)) and not math.isnan(v) and v > 0]
        top = max(finite) if finite else 1
        for j, (n, v) in enumerate(zip(names, vals)):
            y = y0 + j * (bar_h + 2)
            if not isinstance(v, (int, float)) or math.isnan(v):
                out.append(f'<text x="{left}" y="{y + 12}" {FONT} fill="#999">{n}: n/a</text>')
                continue
            w = max(1, width * v / top) if v > 0 else 1
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLORS[n]}"/>')
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}" {FONT}>{n} {_num(v)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def ramp_svg(key, r):
    """Offered rate (x) against achieved rate (y), one polyline per server, log-free axes."""
    series = {n: s.get("steps", []) for n, s in r["servers"].items() if s.get("steps")}
    if not series:
        return None
    top = max(max(st["target"], st["achieved"]) for steps in series.values() for st in steps) or 1
    w, h, pad = 520, 360, 60
    sx = lambda v: pad + (w - 2 * pad) * v / top  # noqa: E731
    sy = lambda v: h - pad + -(h - 2 * pad) * v / top  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 140}" height="{h}">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" {FONT} font-weight="bold">{html.escape(r["label"])}: achieved vs offered (per s)</text>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(top)}" y2="{sy(top)}" stroke="#bbb" stroke-dasharray="4"/>',
           f'<text x="{w - pad}" y="{h - pad + 30}" {FONT} text-anchor="end">offered {_num(top)}</text>',
           f'<text x="{pad - 4}" y="{pad - 6}" {FONT}>achieved</text>']
    for k, (n, steps) in enumerate(series.items()):
        pts = " ".join(f"{sx(st['target']):.1f},{sy(st['achieved']):.1f}" for st in steps)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS.get(n, "black")}" stroke-width="2"/>')
        for st in steps:
            fill = COLORS.get(n, "black") if st["pass"] else "white"
            out.append(f'<circle cx="{sx(st["target"]):.1f}" cy="{sy(st["achieved"]):.1f}" r="4" '
                       f'fill="{fill}" stroke="{COLORS.get(n, "black")}"/>')
        out.append(f'<text x="{w - pad + 10}" y="{pad + 18 * k}" {FONT} fill="{COLORS.get(n, "black")}">{n}</text>')
    out.append(f'<text x="{w - pad + 10}" y="{pad + 60}" {FONT} fill="#666">open dot: step failed</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_plots(result, directory, prefix):
    files = []
    name = f"{prefix}-summary.svg"
    with open(os.path.join(directory, name), "w") as f:
        f.write(summary_svg(result))
    files.append(name)
    for key, r in result["results"].items():
        svg = ramp_svg(key, r)
        if svg:
            name = f"{prefix}-{key}-ramp.svg"
            with open(os.path.join(directory, name), "w") as f:
                f.write(svg)
            files.append(name)
    return files
