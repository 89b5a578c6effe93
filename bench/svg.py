"""Line charts as standalone SVG, so the benchmark needs no plotting library."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000")
WIDTH, HEIGHT, PAD = 520, 340, 48


@dataclass(frozen=True)
class Panel:
    title: str
    x_label: str
    y_label: str
    lines: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]  # (label, xs, ys)
    log_x: bool = False
    y_max: float | None = None  # lines above are clipped, so one bad policy does not flatten the rest


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-12)))
    if (hi - lo) / step < 4:
        step /= 2
    return [lo + i * step for i in range(int((hi - lo) / step) + 1)]


def _panel(panel: Panel, left: float, top: float) -> list[str]:
    clip = f"clip{int(left)}x{int(top)}"
    xs = [x for _, line_x, _ in panel.lines for x in line_x]
    ys = [y for _, _, line_y in panel.lines for y in line_y]
    fx = (lambda v: math.log10(v)) if panel.log_x else (lambda v: v)
    x0, x1 = fx(min(xs)), fx(max(xs))
    y0, y1 = min(0.0, min(ys)), (panel.y_max or max(ys) * 1.05) or 1.0
    w, h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def sx(v: float) -> float:
        return left + PAD + (fx(v) - x0) / ((x1 - x0) or 1.0) * w

    def sy(v: float) -> float:
        return top + PAD + h - (v - y0) / ((y1 - y0) or 1.0) * h

    out = [f'<text x="{left + WIDTH / 2}" y="{top + 20}" text-anchor="middle" font-weight="bold">'
           f'{escape(panel.title)}</text>',
           f'<rect x="{left + PAD}" y="{top + PAD}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
           f'<clipPath id="{clip}"><rect x="{left + PAD}" y="{top + PAD}" width="{w}" height="{h}"/></clipPath>']
    for v in _ticks(min(xs), max(xs), panel.log_x):
        out.append(f'<text x="{sx(v):.1f}" y="{top + PAD + h + 14}" text-anchor="middle" font-size="10">{v:g}</text>')
    for v in _ticks(y0, y1, False):
        out.append(f'<text x="{left + PAD - 4}" y="{sy(v) + 3:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
    out.append(f'<text x="{left + WIDTH / 2}" y="{top + HEIGHT - 8}" text-anchor="middle" font-size="11">'
               f'{escape(panel.x_label)}</text>')
    out.append(f'<text x="{left + 12}" y="{top + HEIGHT / 2}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 {left + 12} {top + HEIGHT / 2})">{escape(panel.y_label)}</text>')
    for i, (label, line_x, line_y) in enumerate(panel.lines):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(line_x, line_y))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5" '
                   f'clip-path="url(#{clip})"/>')
        out.append(f'<text x="{left + PAD + 6}" y="{top + PAD + 12 + 11 * i}" font-size="10" fill="{colour}">'
                   f'{escape(label)}</text>')
    return out


def write_svg(path: str, panels: list[Panel], columns: int = 2) -> None:
    rows = math.ceil(len(panels) / columns)
    body = []
    for i, panel in enumerate(panels):
        body += _panel(panel, (i % columns) * WIDTH, (i // columns) * HEIGHT)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{columns * WIDTH}" height="{rows * HEIGHT}" '
                f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n')
        f.write("\n".join(body))
        f.write("\n</svg>\n")
