"""The rate cost of the exact integer entropy-parameter path and the range coder (issue 5).

The float32 model in eval mode prices exactly what the codec codes (round(y)
against the Gaussian, round(z) against the factorized densities), and the
decoded image depends only on those symbols, so at equal distortion the
cost of exactness is the ratio of the bytes really coded (exact grid
parameters, range coder, stream ends) to that float estimate.

    python -m informer_codec.bench.exactness IMAGE... [--qualities 0,50,100]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from informer_codec import weights
from informer_codec.bench import sweep_args
from informer_codec.codec import _pad
from informer_codec.models.base import likelihood_bits


@torch.no_grad()
def rate_cost(model, pixels: np.ndarray, quality: float) -> tuple[float, float]:
    """(bits of the coded side and latent streams, bits the float model estimates) for one image."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    x = _pad(x, model.downsample)
    likelihoods = model(x, torch.tensor([quality]))["likelihoods"]
    estimate = float(likelihood_bits(likelihoods).sum())
    latents = model.compress(x, quality, bf16=False)  # the symbols the float32 forward priced
    return 8.0 * (len(latents.side) + len(latents.latent)), estimate


def main() -> None:
    paths, models, qualities = sweep_args.parse(__doc__)
    for name in models:
        model, _ = weights.load(name)
        for q in qualities:
            coded_bits = float_bits = 0.0
            for path in paths:
                pixels = np.array(Image.open(path).convert("RGB"))
                coded, estimate = rate_cost(model, pixels, q)
                coded_bits, float_bits = coded_bits + coded, float_bits + estimate
            change = 100 * (coded_bits / float_bits - 1) if float_bits else math.nan
            print(f"{name} q{q:g}: coded {coded_bits / 8:.0f} bytes, float estimate {float_bits / 8:.0f}, "
                  f"rate cost of the exact path and the coder {change:+.3f} %")


if __name__ == "__main__":
    main()
