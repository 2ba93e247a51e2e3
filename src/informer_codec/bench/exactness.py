"""The rate cost of the exact integer entropy-parameter path (issue 5).

For the same quantised latent y_hat (so the same distortion), compare the
information content of y under the exact grid parameters (what the codec
codes with) and under the float32 parameters of the same network. Their ratio
is the rate cost of exactness on y; side information is coded with the same
frozen tables either way.

    python -m informer_codec.bench.exactness IMAGE... [--qualities 0,50,100]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from PIL import Image

from informer_codec import weights
from informer_codec.codec import _pad
from informer_codec.models.base import SCALE_MAX, SCALE_MIN


def _gaussian_bits(y_hat: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> float:
    """-log2 P(y_hat) under N(mu, sigma) integrated over unit bins, summed."""
    upper = torch.special.ndtr((y_hat - mu + 0.5) / sigma)
    lower = torch.special.ndtr((y_hat - mu - 0.5) / sigma)
    return float(-torch.log2(torch.clamp(upper - lower, min=1e-12)).sum())


@torch.no_grad()
def _float_parameters(model, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) from the float32 networks, for positions in (M, h, w) layout."""
    y_hat4 = y_hat[None].float()
    if model.config.name == "mbt2018":
        psi = model.h_s(torch.round(model.h_a(y)))
        extra = {}
    else:
        psi = model.local_h_s(torch.round(model.local_h_a(y)))
        z_g = torch.round(model._global_latent(y))
        extra = {"tokens": model.global_h_s(z_g.reshape(1, model.config.tokens, -1))}
    phi = model._context_forward(model.context(y_hat4), extra)
    scales, means = model.entropy_parameters(torch.cat([psi, phi], dim=1)).chunk(2, dim=1)
    return means[0].double(), torch.clamp(scales[0].double(), SCALE_MIN, SCALE_MAX)


@torch.no_grad()
def rate_cost(model, pixels: np.ndarray, quality: float) -> tuple[float, float]:
    """(bits of y with exact parameters, bits with float parameters) for one image."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    x = _pad(x, model.downsample)
    q = torch.tensor([quality])
    y = model.gain.scale(model.g_a(x), q)
    latents = model.compress(x, quality)
    y_hat = latents.y_hat
    from informer_codec.coder import StreamEncoder

    side = model._encode_side(y, y_hat, StreamEncoder())
    mu, sigma = model._encoder_parameters(y_hat, side)
    m, h, w = y_hat.shape
    exact_mu = mu.T.reshape(m, h, w)
    exact_sigma = sigma.T.reshape(m, h, w)
    float_mu, float_sigma = _float_parameters(model, y, y_hat)
    return _gaussian_bits(y_hat, exact_mu, exact_sigma), _gaussian_bits(y_hat, float_mu, float_sigma)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--qualities", default="0,50,100")
    parser.add_argument("--models", default="informer,mbt2018")
    args = parser.parse_args()
    qualities = [float(q) for q in args.qualities.split(",")]
    for name in args.models.split(","):
        model, _ = weights.load(name)
        for q in qualities:
            exact_bits = float_bits = 0.0
            for path in args.images:
                pixels = np.array(Image.open(path).convert("RGB"))
                e, f = rate_cost(model, pixels, q)
                exact_bits, float_bits = exact_bits + e, float_bits + f
            change = 100 * (exact_bits / float_bits - 1) if float_bits else math.nan
            print(f"{name} q{q:g}: y bits exact {exact_bits:.0f}, float {float_bits:.0f}, "
                  f"rate change of the exact path {change:+.3f} %")


if __name__ == "__main__":
    main()
