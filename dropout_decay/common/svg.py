"""Small static line charts as SVG: per-trial learning curves in optuna-dashboard and the figures
committed under docs/results, with no browser or image library needed to draw them."""

from __future__ import annotations

import html
import math


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22", "#393b79", "#ad494a"]
W, H, LEFT, RIGHT, TOP, BOTTOM = 860, 420, 70, 260, 40, 50


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0) * 0.1
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(x: float) -> str:
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.2g}"
    return f"{x:g}" if abs(x) >= 1 else f"{x:.3g}"


def line_chart(series: list[dict], title: str, xlabel: str, ylabel: str, band: list[dict] = ()) -> str:
    """`series`: {"name", "x", "y", optional "dash", "colour", "width", "markers"}; `band`:
    {"x", "low", "high", "colour"} shaded intervals. Returns an SVG document."""
    xs = [x for s in series for x in s["x"]] + [x for b in band for x in b["x"]]
    ys = [y for s in series for y in s["y"] if y is not None and math.isfinite(y)]
    ys += [v for b in band for v in (*b["low"], *b["high"]) if v is not None and math.isfinite(v)]
    if not xs or not ys:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="60"><text x="10" y="30">{html.escape(title)}: no data</text></svg>'
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = (y1 - y0) * 0.05 or 0.05
    y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y):
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="11">', f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">{html.escape(title)}</text>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#f0f0f0"/>'
                   f'<text x="{px(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 10}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="16" y="{TOP + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {TOP + ph / 2})">'
               f'{html.escape(ylabel)}</text>')
    for b in band:
        pts = [(px(x), py(v)) for x, v in zip(b["x"], b["high"])] + [(px(x), py(v)) for x, v in zip(b["x"][::-1], b["low"][::-1])]
        out.append(f'<polygon points="{" ".join(f"{a:.1f},{c:.1f}" for a, c in pts)}" fill="{b["colour"]}" opacity="0.15"/>')
    for i, s in enumerate(series):
        colour = s.get("colour", COLOURS[i % len(COLOURS)])
        pts = [(px(x), py(y)) for x, y in zip(s["x"], s["y"]) if y is not None and math.isfinite(y)]
        dash = ' stroke-dasharray="6 4"' if s.get("dash") == "dash" else ' stroke-dasharray="2 3"' if s.get("dash") == "dot" else ""
        if len(pts) > 1:
            out.append(f'<polyline points="{" ".join(f"{a:.1f},{c:.1f}" for a, c in pts)}" fill="none" '
                       f'stroke="{colour}" stroke-width="{s.get("width", 2)}"{dash} opacity="{s.get("opacity", 1)}"/>')
        if s.get("markers", len(pts) == 1):
            out += [f'<circle cx="{a:.1f}" cy="{c:.1f}" r="3" fill="{colour}"/>' for a, c in pts]
        if s.get("name"):
            ly = TOP + 14 * len([t for t in series[:i] if t.get("name")])
            out.append(f'<line x1="{LEFT + pw + 10}" x2="{LEFT + pw + 30}" y1="{ly + 6}" y2="{ly + 6}" stroke="{colour}" '
                       f'stroke-width="2"{dash}/><text x="{LEFT + pw + 34}" y="{ly + 10}">{html.escape(str(s["name"]))}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


def _shade(value: float, lo: float, hi: float, diverging: bool) -> str:
    """White at 0 (diverging: red above, blue below) or white → blue from lo to hi."""
    if diverging:
        t = max(-1.0, min(1.0, value / (max(abs(lo), abs(hi)) or 1.0)))
        r, g, b = (255, int(255 * (1 - t)), int(255 * (1 - t))) if t > 0 else (int(255 * (1 + t)), int(255 * (1 + t)), 255)
    else:
        t = 0.0 if hi <= lo else (value - lo) / (hi - lo)
        r, g, b = int(255 - 222 * t), int(255 - 153 * t), int(255 - 75 * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_chart(columns: list[str], rows: list[str], cells: dict, title: str, xlabel: str, ylabel: str,
               diverging: bool = False) -> str:
    """A grid of labelled cells: `cells[(column, row)] = (value, label)`; missing cells stay grey.
    Rows are drawn bottom-up, so increasing row values rise as on a plot's y axis."""
    values = [v for v, _ in cells.values() if v is not None and math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    cw, ch = (W - LEFT - 40) / max(len(columns), 1), (H - TOP - BOTTOM) / max(len(rows), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="11">', f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">{html.escape(title)}</text>']
    for i, column in enumerate(columns):
        for j, row in enumerate(rows):
            x, y = LEFT + i * cw, H - BOTTOM - (j + 1) * ch
            value, label = cells.get((column, row), (None, ""))
            fill = "#dddddd" if value is None or not math.isfinite(value) else _shade(value, lo, hi, diverging)
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" height="{ch:.1f}" fill="{fill}" stroke="white"/>')
            ink = "white" if sum(int(fill[i:i + 2], 16) * w for i, w in ((1, 0.3), (3, 0.59), (5, 0.11))) < 140 else "black"
            for k, line in enumerate(str(label).split("\n")):
                out.append(f'<text x="{x + cw / 2:.1f}" y="{y + ch / 2 + 4 + 13 * (k - 0.5 * (str(label).count(chr(10)))):.1f}" '
                           f'text-anchor="middle" fill="{ink}">{html.escape(line)}</text>')
        out.append(f'<text x="{LEFT + (i + 0.5) * cw:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{html.escape(column)}</text>')
    for j, row in enumerate(rows):
        out.append(f'<text x="{LEFT - 6}" y="{H - BOTTOM - (j + 0.5) * ch + 4:.1f}" text-anchor="end">{html.escape(row)}</text>')
    out.append(f'<text x="{LEFT + (W - LEFT - 40) / 2}" y="{H - 10}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="16" y="{TOP + (H - TOP - BOTTOM) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {TOP + (H - TOP - BOTTOM) / 2})">{html.escape(ylabel)}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"
