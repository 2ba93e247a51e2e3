"""Bjøntegaard deltas (the ``bjontegaard`` package, PCHIP by default) and the markdown table.

Curves from different sweeps have different point counts, and a barely trained model may have
non-monotonic points, so each curve is sorted along the integration axis and repeated values are
dropped before interpolating. No overlap gives NaN ("n/a" in the table), never an extrapolation.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np

from informer_codec.bench.metrics import ms_ssim_db
from informer_codec.bench.results import Curve

METHODS = ("pchip", "akima", "cubic")


def _bjontegaard():
    os.environ.setdefault("MPLBACKEND", "Agg")  # the package imports pyplot; never open a window
    import bjontegaard

    return bjontegaard


def _clean(rate: Sequence, metric: Sequence, by_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with positive rate, sorted by the integration axis, its duplicates dropped."""
    pairs = [(float(r), float(m)) for r, m in zip(rate, metric, strict=True)
             if r is not None and m is not None and math.isfinite(r) and math.isfinite(m) and r > 0]
    key = 0 if by_rate else 1
    pairs.sort(key=lambda p: p[key])
    unique = [p for i, p in enumerate(pairs) if i == 0 or p[key] != pairs[i - 1][key]]
    return np.array([p[0] for p in unique]), np.array([p[1] for p in unique])


def _delta(function, rate_a, metric_a, rate_t, metric_t, method: str, by_rate: bool) -> float:
    ra, ma = _clean(rate_a, metric_a, by_rate)
    rt, mt = _clean(rate_t, metric_t, by_rate)
    if len(ra) < 2 or len(rt) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partial overlap is reported by the range columns instead
        return float(function(ra, ma, rt, mt, method, require_matching_points=False, min_overlap=0))


def bd_rate(rate_anchor: Sequence, dist_anchor: Sequence, rate_test: Sequence, dist_test: Sequence,
            method: str = "pchip") -> float:
    """Average bitrate change of test against anchor at equal quality, in percent (negative: saves)."""
    return _delta(_bjontegaard().bd_rate, rate_anchor, dist_anchor, rate_test, dist_test, method, False)


def bd_psnr(rate_anchor: Sequence, dist_anchor: Sequence, rate_test: Sequence, dist_test: Sequence,
            method: str = "pchip") -> float:
    """Average quality change of test against anchor at equal log-bitrate, in the metric's unit."""
    return _delta(_bjontegaard().bd_psnr, rate_anchor, dist_anchor, rate_test, dist_test, method, True)


def _ms_ssim_db(curve: Curve) -> list[float | None]:
    return [ms_ssim_db(v) for v in curve.ms_ssim]


def _fmt(value: float, unit: str) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.2f}{unit}"


def row(curve: Curve, anchor: Curve, method: str = "pchip") -> dict[str, float]:
    """BD-rate (PSNR), BD-PSNR and BD-rate (MS-SSIM in dB) of one curve against the anchor."""
    return {
        "bd_rate_psnr": bd_rate(anchor.bpp, anchor.psnr, curve.bpp, curve.psnr, method),
        "bd_psnr": bd_psnr(anchor.bpp, anchor.psnr, curve.bpp, curve.psnr, method),
        "bd_rate_ms_ssim": bd_rate(anchor.bpp, _ms_ssim_db(anchor), curve.bpp, _ms_ssim_db(curve), method),
    }


def _span(values: list[float | None], digits: int) -> str:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return f"{min(known):.{digits}f}-{max(known):.{digits}f}" if known else "n/a"


def table(curves: list[Curve], anchor: Curve, method: str = "pchip") -> str:
    """Markdown: one row per curve against ``anchor`` (rows with too little overlap show n/a)."""
    lines = [
        f"BD-rate and BD-PSNR against **{anchor.name}** ({method}; negative BD-rate = fewer bits).",
        "",
        "| codec | kind | bpp | PSNR (dB) | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM (dB) |",
        "|---|---|---|---|---|---|---|",
        f"| {anchor.name} | {anchor.kind} (reference) | {_span(anchor.bpp, 3)} | {_span(anchor.psnr, 2)} "
        "| 0 | 0 | 0 |",
    ]
    for curve in curves:
        if curve.name == anchor.name:
            continue
        r = row(curve, anchor, method)
        lines.append(
            f"| {curve.name} | {curve.kind} | {_span(curve.bpp, 3)} | {_span(curve.psnr, 2)} | "
            f"{_fmt(r['bd_rate_psnr'], ' %')} | {_fmt(r['bd_psnr'], ' dB')} | "
            f"{_fmt(r['bd_rate_ms_ssim'], ' %')} |"
        )
    return "\n".join(lines) + "\n"


def matrix(curves: list[Curve], references: list[Curve], method: str = "pchip") -> str:
    """Markdown: BD-rate (PSNR-RGB) of each curve against each reference, one column per reference."""
    lines = [
        f"BD-rate (PSNR-RGB, {method}) of each row against each column; negative = fewer bits.",
        "",
        "| codec | " + " | ".join(ref.name for ref in references) + " |",
        "|---|" + "---|" * len(references),
    ]
    for curve in curves:
        cells = [_fmt(bd_rate(ref.bpp, ref.psnr, curve.bpp, curve.psnr, method), " %") for ref in references]
        lines.append(f"| {curve.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
