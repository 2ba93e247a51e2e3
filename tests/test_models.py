"""Both models: latents decode exactly and the decoded image equals the encoder's reconstruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import random_image, tiny_model
from informer_codec.codec import _pad
from informer_codec.errors import CorruptStreamError


@pytest.fixture(scope="module", params=["informer", "mbt2018"])
def model(request):
    return tiny_model(request.param)


def _image_tensor(h: int, w: int, seed: int = 0) -> torch.Tensor:
    pixels = random_image(h, w, seed)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (200, 131)])
def test_decoded_image_equals_encoder_reconstruction(model, size):
    x = _pad(_image_tensor(*size), model.downsample)
    latents = model.compress(x, 60.0)
    assert len(latents.latent) > 100, "latents should carry real information"
    decoded = model.decompress(latents, 60.0)
    assert torch.equal(decoded, model.synthesize(latents.y_hat, 60.0))


@pytest.mark.parametrize("bf16", [False, True])
def test_analysis_in_either_precision_codes_a_stream_that_decodes_exactly(model, bf16, monkeypatch):
    """The encoder's g_a runs in bf16 where the hardware is fast at it: forced either way here,
    the latent it rounds to still decodes exactly, and bf16 moves g_a's output only slightly."""
    from informer_codec import hardware

    monkeypatch.setattr(hardware, "bf16_is_fast", lambda device_type: bf16)
    x = _pad(_image_tensor(64, 96, seed=5), model.downsample)
    latents = model.compress(x, 60.0)
    assert torch.equal(model.decompress(latents, 60.0), model.synthesize(latents.y_hat, 60.0))
    y32, y16 = model.analyze(x, bf16=False), model.analyze(x, bf16=True)
    assert y16.dtype == torch.float32 and not torch.equal(y16, y32)
    assert (y16 - y32).abs().max() <= 0.05 * y32.abs().max()


def test_latents_decoded_side_by_side_equal_each_decoded_alone(model):
    """Tiles of different shapes share the parameter path's passes, never each other's values."""
    sizes = [(64, 128), (37, 53), (200, 131), (64, 64)]
    coded = [model.compress(_pad(_image_tensor(h, w, seed=i), model.downsample), 70.0)
             for i, (h, w) in enumerate(sizes)]
    together = model.decode_latents(coded)
    for latents, y_hat in zip(coded, together, strict=True):
        assert torch.equal(y_hat, latents.y_hat)
        assert torch.equal(model.decode_latents([latents])[0], y_hat)


def test_padding_a_wavefront_to_a_row_multiple_changes_none_of_its_parameters(model, monkeypatch):
    from informer_codec.models import base

    latents = model.compress(_pad(_image_tensor(64, 64, seed=5), model.downsample), 70.0)
    decoding = model._start_decoding(latents)
    decoding.padded = base.PaddedLatent.of(latents.y_hat)  # every context value known
    group = decoding.positions(5)
    assert len(group) % 4, "the test needs a wavefront that padding changes"
    monkeypatch.setattr(base, "ROW_MULTIPLE", 1)
    unpadded = model._parameters_at([group])
    monkeypatch.setattr(base, "ROW_MULTIPLE", 4)
    padded = model._parameters_at([group])
    for a, b in zip(unpadded, padded, strict=True):
        assert a.shape == (len(group), model.config.m)
        assert torch.equal(a, b)


def test_one_corrupt_latent_among_several_is_reported(model):
    coded = [model.compress(_pad(_image_tensor(64, 64, seed=i), model.downsample), 70.0) for i in range(3)]
    damaged = bytearray(coded[1].latent)
    damaged[len(damaged) // 2] ^= 0x04
    coded[1].latent = bytes(damaged)
    with pytest.raises(CorruptStreamError):
        model.decode_latents(coded)


def test_latents_round_trip_exactly_with_escapes(model):
    """Outliers far beyond the coder's alphabets still decode exactly (escape codes)."""
    x = _pad(_image_tensor(64, 64, seed=3), model.downsample)
    with torch.no_grad():
        model.g_a[-1].bias[0] += 5000.0  # channel 0 of y is huge everywhere
    try:
        latents = model.compress(x, 100.0)
        assert latents.y_hat[0].abs().min() > 1000
        model.decompress(latents, 100.0)  # raises on any symbol mismatch (checksum)
    finally:
        with torch.no_grad():
            model.g_a[-1].bias[0] -= 5000.0


def test_flipped_bit_in_latent_stream_is_detected(model):
    x = _pad(_image_tensor(64, 64, seed=1), model.downsample)
    latents = model.compress(x, 40.0)
    damaged = bytearray(latents.latent)
    damaged[len(damaged) // 3] ^= 0x10
    latents.latent = bytes(damaged)
    with pytest.raises(CorruptStreamError):
        model.decompress(latents, 40.0)


def test_quality_changes_rate_monotonically_in_gain_units(model):
    """A higher quality means a larger gain: more bits (here from the gains, untrained)."""
    original = model.gain.gain.detach().clone()
    with torch.no_grad():
        model.gain.gain.copy_(torch.linspace(0.5, 2.0, model.gain.levels)[:, None])
    x = _pad(_image_tensor(64, 64, seed=2), model.downsample)
    low, high = model.compress(x, 0.0), model.compress(x, 100.0)
    with torch.no_grad():
        model.gain.gain.copy_(original)
    assert len(high.latent) > len(low.latent)


def test_training_forward_gives_likelihoods_for_every_latent(model):
    model.train()
    try:
        out = model(_image_tensor(64, 64), torch.tensor([10.0]))
    finally:
        model.eval()
    assert out["x_hat"].shape == (1, 3, 64, 64)
    expected = {"y", "z"} if "z" in out["likelihoods"] else {"y", "z_l", "z_g"}
    assert set(out["likelihoods"]) == expected
    for likelihood in out["likelihoods"].values():
        assert torch.all(likelihood > 0) and torch.all(likelihood <= 1)


@pytest.mark.parametrize("name", ["informer", "mbt2018"])
def test_eval_likelihood_is_what_the_streams_really_cost(name):
    """Validation must measure the codec: the codec codes round(y) against (mu, sigma) and
    round(z) against the factorized tables, and the eval-mode likelihood must price exactly
    that (also what the bench's exactness report relies on). Mean- and median-shifted
    rounding promised 20-30 % fewer latent bits at q0 than the shipped weights' streams
    spent on this crop."""
    from PIL import Image

    from conftest import SAMPLE
    from informer_codec.bench.exactness import rate_cost
    from informer_codec.weights import load_file

    model = load_file(Path(__file__).resolve().parents[1] / "weights" / f"{name}.pt")
    pixels = np.asarray(Image.open(SAMPLE).convert("RGB"))[:128, :128].copy()
    # Each of the two streams (SIDE, LATY) ends by flushing at most one 32-bit word: a fixed cost
    # that weighs over 1 % at quality 0 on so small a crop (2,651 estimated bits with the session-12
    # Informer weights, which coded 2,688). Mispricing of the kind this guards against was 20-30 %.
    flush_bits = 2 * 32
    for quality in (0.0, 100.0):
        coded, estimate = rate_cost(model, pixels, quality)
        assert abs(coded - estimate) < 0.01 * estimate + flush_bits, (quality, coded, estimate)


def test_round_quantizer_trains_on_what_eval_measures(model):
    """Training with round(y) synthesises what eval (and the codec) does, and the analysis
    still gets a gradient through the rounding."""
    x, quality = _image_tensor(64, 64, seed=3), torch.tensor([40.0])
    with torch.no_grad():
        decoded = model(x, quality)["x_hat"]
    model.train()
    try:
        out = model(x, quality, "round")
        bits = -torch.log2(out["likelihoods"]["y"]).sum()
        (bits + out["x_hat"].square().sum()).backward()
    finally:
        model.eval()
    assert torch.allclose(out["x_hat"], decoded)
    gradient = model.g_a[0].weight.grad
    model.zero_grad(set_to_none=True)
    assert gradient is not None and gradient.abs().sum() > 0
    with pytest.raises(ValueError, match="quantizer"):
        model(x, quality, "floor")


@pytest.mark.parametrize("name", ["informer", "mbt2018"])
def test_decoded_pixels_do_not_depend_on_fast_bf16_hardware(name, monkeypatch):
    """Only the encoder may use bf16. g_s's widest layer once ran in bf16 where the CPU was fast
    at it, which moved the shipped weights' pixels up to 1.17 levels from float32 (two after
    rounding; docs/performance.md, session 20): a decoder on another CPU must land within one."""
    from PIL import Image

    from conftest import SAMPLE
    from informer_codec import hardware, weights

    path = Path(__file__).resolve().parents[1] / "weights" / f"{name}.pt"
    pixels = np.array(Image.open(SAMPLE).convert("RGB"))[:64, :96]
    monkeypatch.setattr(hardware, "bf16_is_fast", lambda device_type: False)
    net = weights.load_file(path)
    x = _pad(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255, net.downsample)
    latents = net.compress(x, 60.0)
    plain = net.decompress(latents, 60.0)
    monkeypatch.setattr(hardware, "bf16_is_fast", lambda device_type: True)
    assert torch.equal(weights.load_file(path).decompress(latents, 60.0), plain)


@pytest.mark.parametrize("name", ["informer", "mbt2018"])
def test_gemm_weight_layout_changes_storage_not_streams_or_latents(name, monkeypatch):
    """The exact path stores its GEMM weights transposed where the CPU's BLAS is faster that way
    (hardware.blas_prefers_transposed_weights); either layout codes the same bytes and decodes
    the same latent, and the switch really changes how the weights are stored."""
    from PIL import Image

    from conftest import SAMPLE
    from informer_codec import hardware, weights

    path = Path(__file__).resolve().parents[1] / "weights" / f"{name}.pt"
    pixels = np.array(Image.open(SAMPLE).convert("RGB"))[:64, :96]
    results = {}
    for transposed in (False, True):
        monkeypatch.setattr(hardware, "blas_prefers_transposed_weights", lambda t=transposed: t)
        net = weights.load_file(path)
        x = _pad(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255, net.downsample)
        latents = net.compress(x, 40.0)
        results[transposed] = {"streams": (latents.side, latents.latent),
                               "latent": net.decode_latents([latents])[0],
                               "context weight": net._exact()["context"][0]}
    plain, fast = results[False], results[True]
    assert plain["streams"] == fast["streams"]
    assert torch.equal(plain["latent"], fast["latent"])
    assert torch.equal(plain["context weight"], fast["context weight"])
    assert plain["context weight"].is_contiguous() and not fast["context weight"].is_contiguous()
