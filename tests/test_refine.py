"""Encoder-side latent refinement: smaller real files at the same quality, any decoder reads them."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from conftest import SAMPLE, random_image, run_cli


def _rd_cost(original: np.ndarray, decoded: np.ndarray, size: int, quality: float) -> float:
    """bpp of the real file plus lambda * 255^2 * MSE: what the encoder is asked to minimise."""
    from informer_codec.models.base import DEFAULT_LAMBDAS
    from informer_codec.models.blocks import interpolate_lambda

    lam = float(interpolate_lambda(DEFAULT_LAMBDAS, torch.tensor([quality])))
    mse = np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2) / 255**2
    return size * 8 / (original.shape[0] * original.shape[1]) + lam * 255**2 * mse


def test_refined_latents_code_the_sample_cheaper_through_the_cli(tmp_path):
    """Shipped weights, real files: the refined stream decodes with the plain decoder, and its
    real rate-distortion cost is lower."""
    original = np.array(Image.open(SAMPLE).convert("RGB"))[:200, :240]
    source = tmp_path / "crop.png"
    Image.fromarray(original).save(source)
    costs = {}
    for steps in (0, 20):
        coded, decoded = tmp_path / f"r{steps}.inf", tmp_path / f"r{steps}.png"
        encoded = run_cli("encode", source, coded, "-q", "30", "--refine", steps)
        assert encoded.returncode == 0, encoded.stderr
        assert run_cli("decode", coded, decoded).returncode == 0
        pixels = np.array(Image.open(decoded).convert("RGB"))
        costs[steps] = _rd_cost(original, pixels, coded.stat().st_size, 30.0)
    assert costs[20] < 0.995 * costs[0], costs


def test_refined_encodes_are_reproducible(tiny_weights):
    from informer_codec import codec

    pixels = random_image(64, 96, seed=3)
    first = codec.encode(pixels, model="informer", quality=40, refine=3).data
    assert codec.encode(pixels, model="informer", quality=40, refine=3).data == first
    assert codec.decode(first).pixels.shape == pixels.shape


def test_annealed_rounding_lies_between_floor_and_ceiling_and_hardens_as_it_cools():
    from informer_codec.models.refine import annealed_rounding

    y = torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 3
    generator = torch.Generator().manual_seed(1)
    warm = annealed_rounding(y, 0.5, generator)
    assert torch.all(warm >= torch.floor(y)) and torch.all(warm <= torch.floor(y) + 1)
    assert (warm - torch.round(warm)).abs().max() > 0.1  # soft: a mix, not a rounding
    cold = annealed_rounding(y, 0.01, generator)
    clear = ((y - torch.floor(y)) - 0.5).abs() > 0.1
    assert torch.allclose(cold[clear], torch.round(y)[clear], atol=1e-3)


def test_negative_refinement_is_a_usage_error(tiny_weights, tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(random_image(32, 32)).save(path)
    result = run_cli("encode", path, tmp_path / "out.inf", "--refine", "-1")
    assert result.returncode == 2
    assert not (tmp_path / "out.inf").exists()
