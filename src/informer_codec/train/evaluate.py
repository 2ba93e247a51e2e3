"""`informer evaluate`: held-out rate and distortion at every quality level, the check before shipping.

New weights ship only when they beat the shipped ones on the held-out crops (the trainer's own
validation photos, every 50th of the training folder by name, never Kodak). The trainer logs only
three qualities, in bf16 where the hardware has it, while what ships is the fp16 export of the weight
average. So a checkpoint is scored here as :func:`export` would write it, at every quality level of
the model, in float32, priced as the codec codes it (round(y)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from informer_codec.models import LatentCodecModel
from informer_codec.train.data import list_images, split, validation_crops
from informer_codec.train.loop import _psnr, rate_distortion


@dataclass
class LevelScore:
    """One quality level on the held-out crops."""

    lam: float
    quality: float
    bpp: float
    psnr: float
    loss: float


def held_out_crops(dataset: Path, patch: int = 256) -> torch.Tensor:
    """The crops the trainer validates on, for a training folder."""
    return validation_crops(split(list_images(dataset))[1], patch)


@torch.no_grad()
def score(model: LatentCodecModel, crops: torch.Tensor) -> list[LevelScore]:
    """Every quality level of ``model``: bpp, PSNR and loss of round(y), averaged over ``crops``."""
    model.eval()
    lambdas = model.config.lambdas
    scores = []
    for index, lam in enumerate(lambdas):
        quality = 100.0 * index / (len(lambdas) - 1)
        m = rate_distortion(model, crops, torch.full((len(crops),), quality), bf16=False)
        scores.append(LevelScore(lam, quality, float(m["bpp"]), _psnr(float(m["mse"])), float(m["loss"])))
    return scores


def comparison_table(names: list[str], results: list[list[LevelScore]]) -> list[str]:
    """Text rows: one per lambda, one column per model; later columns give their loss change
    against the first model's at the same lambda."""
    by_lambda = [{s.lam: s for s in scores} for scores in results]
    first = by_lambda[0]
    lines = ["lambda   quality  " + "  ".join(f"{name} (bpp / dB / loss)" for name in names)]
    for lam in sorted(set().union(*by_lambda)):
        cells = []
        for column, scores in enumerate(by_lambda):
            s = scores.get(lam)
            if s is None:
                cells.append("-")
                continue
            cell = f"{s.bpp:.4f} / {s.psnr:.2f} / {s.loss:.4f}"
            if column and lam in first:
                cell += f" ({100 * (s.loss / first[lam].loss - 1):+.1f} %)"
            cells.append(cell)
        quality = next(scores[lam].quality for scores in by_lambda if lam in scores)
        lines.append(f"{lam:<8g} {quality:>6.1f}   " + "   ".join(cells))
    if len(results) > 1:
        lines.append(held_out_bd_rates(names, results))
    return lines


def held_out_bd_rates(names: list[str], results: list[list[LevelScore]]) -> str:
    """One line: each later model's BD-rate (PSNR, PCHIP) against the first on the held-out crops.

    The per-level losses judge weights trained on the same objective; when the objective moves
    loss between levels (``--level-balance``), the curves' BD-rate is what still compares them.
    """
    try:
        from informer_codec.bench.bdrate import bd_rate
    except ImportError:  # bjontegaard comes with the bench extra
        return "BD-rate against the first: needs the bench extra (pip install informer-codec[bench])"

    def curve(scores: list[LevelScore]) -> tuple[list[float], list[float]]:
        return [s.bpp for s in scores], [s.psnr for s in scores]

    cells = [f"{name} {bd_rate(*curve(results[0]), *curve(scores)):+.2f} %"
             for name, scores in zip(names[1:], results[1:], strict=True)]
    return "BD-rate (PSNR) against the first, held-out crops: " + ", ".join(cells)
