"""Per-image measurements: real bytes, bpp, PSNR-RGB and MS-SSIM of 8-bit images, seconds.

Every codec (ours and Pillow's) is scored by the same function on the same uint8 arrays, so the
curves differ only by the codec, as in CompressAI's evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from informer_codec.bench.compare import psnr_rgb

# pytorch_msssim downsamples four times with an 11-tap window: each side must exceed (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161

__all__ = ["MS_SSIM_MIN_SIDE", "Measurement", "measure", "ms_ssim_db", "ms_ssim_rgb", "psnr_rgb"]


@dataclass
class Measurement:
    """One image coded at one operating point."""

    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None  # None where the image is too small for MS-SSIM
    encoding_time: float
    decoding_time: float


def ms_ssim_rgb(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """MS-SSIM of two (H, W, 3) uint8 images (pytorch_msssim, data_range=255 on float tensors).

    Returns None for images smaller than :data:`MS_SSIM_MIN_SIDE` on a side, where the standard
    five-scale MS-SSIM is undefined; a smaller window would be a different metric.
    """
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim

    def tensor(a: np.ndarray):
        # np.array copies: torch warns about (and must not alias) read-only arrays
        return torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1)[None].float()

    with torch.no_grad():
        return float(ms_ssim(tensor(original), tensor(decoded), data_range=255, size_average=True))


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM in dB, -10 log10(1 - MS-SSIM): spreads the high-quality end for plots and BD-rates."""
    if value is None or not math.isfinite(value):
        return None
    return float("inf") if value >= 1 else -10 * math.log10(1 - value)


def measure(original: np.ndarray, decoded: np.ndarray, size: int, encoding_time: float,
            decoding_time: float) -> Measurement:
    """Score one decoded image against its original; ``size`` is the real compressed byte count."""
    if original.shape != decoded.shape:
        raise ValueError(f"decoded shape {decoded.shape} differs from the original {original.shape}")
    height, width = original.shape[:2]
    return Measurement(size, size * 8 / (width * height), psnr_rgb(original, decoded),
                       ms_ssim_rgb(original, decoded), encoding_time, decoding_time)
