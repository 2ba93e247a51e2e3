"""`python -m informer_codec.bench.compare ORIGINAL DECODED CODED`: bytes, bpp and PSNR of one file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def psnr_rgb(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR over all RGB samples of 8-bit images (CompressAI's psnr-rgb convention)."""
    mse = np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main(argv: list[str]) -> int:
    original_path, decoded_path, coded_path = map(Path, argv)
    original = np.asarray(Image.open(original_path).convert("RGB"))
    decoded = np.asarray(Image.open(decoded_path).convert("RGB"))
    size = coded_path.stat().st_size
    h, w = original.shape[:2]
    print(f"{coded_path.name}: {w}x{h}, {size} bytes, {size * 8 / (w * h):.4f} bpp, "
          f"PSNR {psnr_rgb(original, decoded):.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
