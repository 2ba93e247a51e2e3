"""The exact grid arithmetic and the inference shortcuts that must not change what is computed."""

from __future__ import annotations

import pytest
import torch

from informer_codec.models import exact
from informer_codec.models.blocks import GDN


def _grid_values(shape: tuple[int, ...], bits: int, magnitude: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator, dtype=torch.float64) * magnitude
    return exact.to_grid(values, bits, 2.0**14)


def test_split_layer_equals_the_layer_over_the_concatenation():
    """psi's share computed ahead (partial_linear) plus phi's share later is the one layer, bit for bit."""
    psi, phi = _grid_values((37, 24), 10, 40.0, 1), _grid_values((37, 16), 10, 40.0, 2)
    w = _grid_values((20, 40), exact.WEIGHT_BITS, 0.3, 3)
    b = _grid_values((20,), exact.WEIGHT_BITS, 0.3, 4)
    whole = exact.linear(torch.cat([psi, phi], dim=1), w, b)
    split = exact.partial_linear(psi, w[:, :24], b)
    split.addmm_(phi, w[:, 24:].T)
    assert torch.equal(exact.to_grid_(split), whole)
    # ... and the order of the summation does not matter either.
    reversed_order = exact.linear(torch.cat([phi, psi], dim=1), torch.cat([w[:, 24:], w[:, :24]], dim=1), b)
    assert torch.equal(reversed_order, whole)


def test_in_place_rounding_matches_the_copying_one():
    x = torch.randn(1000, dtype=torch.float64) * 3e4
    copy = x.clone()
    expected = torch.clamp(torch.round(x * 2**10) / 2**10, -exact.ACT_LIMIT, exact.ACT_LIMIT)
    assert torch.equal(exact.to_grid(x), expected)
    assert torch.equal(x, copy)  # to_grid leaves its input alone
    assert torch.equal(exact.to_grid_(x), expected)
    assert exact.to_grid_(x).data_ptr() == x.data_ptr()


def test_gelu_lookup_equals_its_definition_bit_for_bit():
    """Every grid input in the table's range, beyond both ends, and the signs of zeros."""
    cdf = exact.build_cdf_table()
    table = exact.build_gelu_table(cdf)
    beyond = torch.tensor([-exact.ACT_LIMIT, -1000.0, -16.0009765625, 16.0009765625, 123.5, exact.ACT_LIMIT])
    x = torch.cat([exact.centred_grid(), beyond, _grid_values((4000,), exact.ACT_BITS, 9.0, 5)])
    fast, reference = exact.gelu(x.clone(), table), exact.gelu_reference(x.clone(), cdf)
    assert torch.equal(fast.view(torch.int64), reference.view(torch.int64))


def test_gelu_table_refuses_a_cdf_table_that_does_not_reach_0_and_1():
    cdf = exact.build_cdf_table()
    cdf[-1] -= 1
    with pytest.raises(ValueError):
        exact.build_gelu_table(cdf)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_inference_path_computes_compressais_function(inverse):
    torch.manual_seed(0)
    gdn = GDN(16, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(torch.rand_like(gdn.gamma) * 0.1)
    x = (torch.rand(2, 16, 70, 90) + 0.05).contiguous(memory_format=torch.channels_last)  # > one block
    with torch.no_grad():
        fast = gdn(x)
    reference = super(GDN, gdn).forward(x).detach()  # autograd on: CompressAI's forward
    assert fast.shape == x.shape
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_in_place_writes_the_same_bits_over_its_input(inverse):
    torch.manual_seed(1)
    copying, overwriting = GDN(16, inverse=inverse), GDN(16, inverse=inverse, in_place=True)
    with torch.no_grad():
        copying.gamma.add_(torch.rand_like(copying.gamma) * 0.1)
        overwriting.load_state_dict(copying.state_dict())
        x = (torch.rand(1, 16, 70, 90) + 0.05).contiguous(memory_format=torch.channels_last)
        expected = copying(x)
        assert expected.data_ptr() != x.data_ptr()  # the default leaves its input alone
        result = overwriting(x)
    assert result.data_ptr() == x.data_ptr()
    assert torch.equal(result, expected)
