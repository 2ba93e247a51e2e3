"""RD curves in CompressAI's results schema, so ours plot beside ``../shared/anchors/kodak/*.json``.

A file is ``{"name", "description", "results": {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time",
"decoding_time"}}`` with one entry per operating point, each a mean over the images (PSNR averaged
per image, not the PSNR of the mean MSE). We add a top-level ``settings`` object (sweep, images),
which CompressAI's plotting ignores.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from informer_codec.bench.metrics import Measurement

KINDS = ("ours", "baseline", "anchor")  # decides only the plot style and the table order


@dataclass
class Curve:
    """Mean metrics per operating point; None where a metric is unknown (or undefined for an image)."""

    name: str
    description: str
    bpp: list[float]
    psnr: list[float | None]
    ms_ssim: list[float | None]
    encoding_time: list[float | None] = field(default_factory=list)
    decoding_time: list[float | None] = field(default_factory=list)
    kind: str = "anchor"
    settings: dict = field(default_factory=dict)


def _mean(values: list[float | None]) -> float | None:
    """Mean over images, or None if any image lacks the value (a partial mean would mislead)."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return sum(values) / len(values)


def from_measurements(name: str, description: str, points: list[list[Measurement]], kind: str,
                      settings: dict | None = None) -> Curve:
    """Average each operating point's per-image measurements into one curve."""
    def column(attr: str) -> list[float | None]:
        return [_mean([getattr(m, attr) for m in images]) for images in points]

    return Curve(name, description, column("bpp"), column("psnr"), column("ms_ssim"),
                 column("encoding_time"), column("decoding_time"), kind, settings or {})


def to_json(curve: Curve) -> dict:
    """The CompressAI schema (lists in the order CompressAI writes them)."""
    data = {
        "name": curve.name,
        "description": curve.description,
        "results": {
            "psnr-rgb": curve.psnr,
            "ms-ssim-rgb": curve.ms_ssim,
            "bpp": curve.bpp,
            "encoding_time": curve.encoding_time,
            "decoding_time": curve.decoding_time,
        },
    }
    if curve.settings:
        data["settings"] = curve.settings
    return data


def write_json(curve: Curve, path: Path) -> None:
    path.write_text(json.dumps(to_json(curve), indent=2) + "\n")


def read_json(path: Path, kind: str = "anchor") -> Curve:
    """Load a results file; named after the file stem (CompressAI reuses names such as 'mbt2018').

    Missing metrics become None; ``ms-ssim-db-rgb`` (paper files) is converted back to linear.
    """
    data = json.loads(Path(path).read_text())
    results = data["results"]
    bpp = [float(v) for v in results["bpp"]]

    def column(key: str) -> list[float | None]:
        values = results.get(key)
        return [None if v is None else float(v) for v in values] if values else [None] * len(bpp)

    ms_ssim = column("ms-ssim-rgb")
    if "ms-ssim-rgb" not in results and "ms-ssim-db-rgb" in results:
        ms_ssim = [1 - 10 ** (-float(db) / 10) for db in results["ms-ssim-db-rgb"]]
    description = f"{data.get('name', '')}: {data.get('description', '')}".strip(": ")
    return Curve(Path(path).stem, description, bpp, column("psnr-rgb"), ms_ssim,
                 column("encoding_time"), column("decoding_time"), kind, data.get("settings", {}))
