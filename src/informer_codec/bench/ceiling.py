"""How much quality rate can still buy: the transforms' own ceiling (issue 3).

At a given quality the codec reconstructs ``g_s(unscale(round(scale(g_a(x)))))``.
Leaving out the rounding gives what the analysis and synthesis transforms
reach with an unlimited rate at that quality's gains. Where the two PSNRs are
close, more bits cannot help: the transforms themselves are what limit the top
of the rate-distortion curve, and only training them further (or wider) lifts it.

    python -m informer_codec.bench.ceiling IMAGE... [--models informer,mbt2018] [--qualities 0,50,100]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from informer_codec import weights
from informer_codec.bench import sweep_args
from informer_codec.codec import _pad


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a - b) ** 2))
    return 10 * math.log10(1 / mse) if mse else math.inf


@torch.no_grad()
def ceiling(model, pixels: np.ndarray, quality: float) -> tuple[float, float]:
    """(PSNR with the latent rounded, as coded; PSNR with it unrounded) of one image, in float32."""
    height, width = pixels.shape[:2]
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    q = torch.tensor([quality])
    y = model.gain.scale(model.g_a(_pad(x, model.downsample)), q)

    def reconstruct(latent: torch.Tensor) -> torch.Tensor:
        return model.g_s(model.gain.unscale(latent, q)).clamp(0, 1)[:, :, :height, :width]

    return _psnr(reconstruct(torch.round(y)), x), _psnr(reconstruct(y), x)


def main() -> None:
    paths, models, qualities = sweep_args.parse(__doc__)
    images = [np.array(Image.open(path).convert("RGB")) for path in paths]
    # PSNRs are means over the images, as in the bench
    print("| model | quality | PSNR as coded (dB) | PSNR unrounded (dB) | headroom (dB) |")
    print("|---|---|---|---|---|")
    for name in models:
        model, _ = weights.load(name)
        for q in qualities:
            pairs = [ceiling(model, pixels, q) for pixels in images]
            coded, unrounded = (float(np.mean(column)) for column in zip(*pairs, strict=True))
            row = f"| {name} | {q:g} | {coded:.2f} | {unrounded:.2f} | {unrounded - coded:+.2f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
