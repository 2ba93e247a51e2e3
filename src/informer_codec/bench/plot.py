"""RD plot: PSNR and MS-SSIM (dB) against bpp, ours beside the baselines and the anchors.

Drawn with matplotlib's Agg canvas directly (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path

from informer_codec.bench.metrics import ms_ssim_db
from informer_codec.bench.results import Curve

STYLES = {  # kind -> line style; ours stand out, anchors recede
    "ours": {"linestyle": "-", "linewidth": 2.2, "marker": "o", "markersize": 4, "zorder": 3},
    "baseline": {"linestyle": "--", "linewidth": 1.2, "marker": ".", "markersize": 4, "zorder": 2},
    "anchor": {"linestyle": ":", "linewidth": 1.2, "marker": "x", "markersize": 3, "zorder": 1},
}


def _points(xs: list, ys: list) -> tuple[list[float], list[float]]:
    pairs = sorted((x, y) for x, y in zip(xs, ys, strict=True)
                   if x is not None and y is not None and math.isfinite(x) and math.isfinite(y))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _colour(number: int) -> tuple:
    """Distinct colours for up to 20 curves (matplotlib's default cycle repeats after 10)."""
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    return palette((2 * number) % 20 + (number // 10) % 2)


def _max_bpp(curves: list[Curve]) -> float:
    """Show the range our curves and the baselines cover; anchors run on to 3.6 bpp."""
    measured = [b for c in curves if c.kind != "anchor" for b in c.bpp if b is not None]
    return max(measured + [0.5]) * 1.05


def _visible(x: list[float], y: list[float], limit: float) -> tuple[list[float], list[float]]:
    """Points up to the x limit, plus the first one past it so the line runs to the border."""
    inside = sum(1 for v in x if v <= limit)
    keep = min(inside + 1, len(x))
    return x[:keep], y[:keep]


def _ylim(axes, ys: list[float]) -> None:
    if ys:
        margin = max(0.5, 0.04 * (max(ys) - min(ys)))
        axes.set_ylim(min(ys) - margin, max(ys) + margin)


def rd_plot(curves: list[Curve], path: Path, title: str) -> None:
    """Write a two-panel PNG (PSNR-RGB, MS-SSIM dB) of all curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 6), dpi=110)
    FigureCanvasAgg(figure)
    panels = list(zip(figure.subplots(1, 2), ("PSNR-RGB (dB)", "MS-SSIM (dB), -10 log10(1 - MS-SSIM)"),
                      strict=True))
    limit = _max_bpp(curves)
    for index, (axes, ylabel) in enumerate(panels):
        shown: list[float] = []
        for number, curve in enumerate(curves):
            ys = curve.psnr if index == 0 else [ms_ssim_db(v) for v in curve.ms_ssim]
            x, y = _visible(*_points(curve.bpp, ys), limit)
            if x:
                axes.plot(x, y, label=curve.name, color=_colour(number),
                          **STYLES.get(curve.kind, STYLES["anchor"]))
                shown += [v for b, v in zip(x, y, strict=True) if b <= limit]
        axes.set_xlim(0, limit)
        _ylim(axes, shown)
        axes.set_xlabel("bits per pixel")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=8, loc="center right")  # outside the axes: hides no data
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 0.84, 1))
    figure.savefig(path)
