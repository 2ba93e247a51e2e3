"""The exact grid arithmetic and the inference shortcuts that must not change what is computed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from informer_codec.models import exact
from informer_codec.models.blocks import GDN, CrossAttentionBlock, PhaseConvTranspose


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


@pytest.mark.parametrize(("bits", "limit"), [(exact.ACT_BITS, exact.ACT_LIMIT), (exact.PROB_BITS, 2.0**20),
                                             (exact.WEIGHT_BITS, None)])
def test_rounding_by_addition_matches_round_half_to_even(bits, limit):
    """Exact ties between grid points (both parities, both signs), the limits and beyond, partial-sum
    magnitudes, and values far below a grid step: the same numbers as torch.round would give."""
    step = 2.0**-bits
    k = torch.arange(-2000, 2000, dtype=torch.float64)
    ties = (k + 0.5) * step
    near = torch.cat([k * step + step * f for f in (0.25, 0.4999999, 0.5000001, 0.75)])
    top = 2.0**14 if limit is None else limit
    edges = torch.tensor([top, -top, top - step / 2, -top + step / 2, step / 3, -step / 3, 0.0, -0.0])
    values = [ties, near, edges, torch.randn(5000, dtype=torch.float64) * top / 4]
    if limit is not None:
        values.append(torch.tensor([limit * 3, -limit * 3, 2.0**27, -(2.0**27)], dtype=torch.float64))
    x = torch.cat(values)
    expected = torch.round(x * 2**bits) / 2**bits
    if limit is not None:
        expected = expected.clamp(-limit, limit)
    assert torch.equal(exact.to_grid_(x.clone(), bits, limit), expected)


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
def test_gdn_inference_path_under_bf16_autocast_computes_compressais_function_in_bf16(inverse):
    """The encoder's bf16 analysis takes the blocked path too (it writes in place, which
    CompressAI's forward cannot), in bf16 as CompressAI's forward computes under autocast."""
    torch.manual_seed(2)
    gdn = GDN(16, inverse=inverse, in_place=True)
    with torch.no_grad():
        gdn.gamma.add_(torch.rand_like(gdn.gamma) * 0.1)
    x = (torch.rand(1, 16, 70, 90) + 0.05).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = super(GDN, gdn).forward(x).detach()
        with torch.no_grad():
            fast = gdn(x)
    assert fast.data_ptr() == x.data_ptr() and fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast, reference, rtol=1e-2, atol=1e-2)


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


# The exact functions as first written, one plain step at a time: the definitions the faster
# versions in exact.py and blocks.py must reproduce bit for bit, or every file coded so far
# would stop decoding.
def _layer_norm_definition(x, gamma, beta, eps=1e-5):
    count = x.shape[-1]
    centred = exact.to_grid(x - x.sum(dim=-1, keepdim=True) / count, limit=2.0**11)
    var = (centred * centred).sum(dim=-1, keepdim=True) / count
    inv_std = exact.to_grid(1.0 / torch.sqrt(var + eps), exact.PROB_BITS, 2.0**20)
    return exact.to_grid(exact.to_grid(centred * inv_std) * gamma + beta)


def _softmax_definition(logits, exp_table):
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    e = exp_table[torch.clamp(-shifted * 2**exact.ACT_BITS, 0, exact.LUT_SIZE - 1).long()]
    return exact.to_grid(e / e.sum(dim=-1, keepdim=True), exact.PROB_BITS)


def _attention_definition(q, keys, values, heads, exp_table):
    n, d = q.shape
    split = [t.reshape(len(t), heads, d // heads).transpose(0, 1) for t in (q, keys, values)]
    logits = exact.to_grid((split[0] @ split[1].transpose(1, 2)) * (1.0 / math.sqrt(d // heads)))
    probs = _softmax_definition(logits, exp_table)
    return exact.to_grid(probs @ split[2]).transpose(0, 1).reshape(n, d)


def _bits(t):
    """The float64 bit patterns, with -0.0 counted as +0.0 (adding +0.0 turns one into the other):
    rounding by addition gives +0.0 where torch.round gives -0.0, and no later step can tell them
    apart (sums, products, comparisons and lookups treat them alike, and no reciprocal of a grid
    value is ever taken)."""
    return (t + 0.0).contiguous().view(torch.int64)


@pytest.mark.parametrize("magnitude", [0.01, 3.0, 400.0, 2.0**14])
def test_layer_norm_softmax_and_leaky_relu_equal_their_definitions_bit_for_bit(magnitude):
    x = _grid_values((64, 96), exact.ACT_BITS, magnitude, 6)
    x[0] = 0.0  # a row with no variance
    x[1] = x[1].sign() * exact.ACT_LIMIT  # rows at the limits
    gamma = _grid_values((96,), exact.WEIGHT_BITS, 2.0, 7)
    beta = _grid_values((96,), exact.WEIGHT_BITS, 2.0, 8)
    assert torch.equal(_bits(exact.layer_norm(x, gamma, beta)), _bits(_layer_norm_definition(x, gamma, beta)))
    table = exact.build_exp_table()
    assert torch.equal(_bits(exact.softmax(x, table)), _bits(_softmax_definition(x, table)))
    leaky = exact.to_grid(torch.where(x < 0, x * 0.01, x))
    assert torch.equal(_bits(exact.leaky_relu(x)), _bits(leaky))


def test_attention_block_equals_its_definition_bit_for_bit():
    """Folded scales, heads split once per image and the residual shortcut change no bit."""
    torch.manual_seed(2)
    block = CrossAttentionBlock(128, 2)
    tokens = _grid_values((8, 128), exact.ACT_BITS, 3.0, 9)
    queries = _grid_values((40, 128), exact.ACT_BITS, 3.0, 10)
    queries[0] = queries[0].sign() * exact.ACT_LIMIT  # the residual sums must clamp here
    tables = {"exp": exact.build_exp_table(), "gelu": exact.build_gelu_table(exact.build_cdf_table())}
    kv = block.exact_keys_values(tokens)
    w = block.exact_weights()
    fast = block.exact_forward(queries, [(kv, len(queries))], w, tables)

    norm_kv = block._exact_norm(block.norm_kv)
    context = _layer_norm_definition(tokens, *norm_kv)
    keys = exact.linear(context, exact.weight(block.k.weight), exact.weight(block.k.bias))
    values = exact.linear(context, exact.weight(block.v.weight), exact.weight(block.v.bias))
    q = exact.linear(_layer_norm_definition(queries, *w["norm_q"]), *w["q"])
    attended = _attention_definition(q, keys, values, block.heads, tables["exp"])
    x = exact.to_grid(queries + exact.linear(attended, *w["proj"]))
    hidden = exact.gelu(exact.linear(_layer_norm_definition(x, *w["norm_mlp"]), *w["fc1"]), tables["gelu"])
    expected = exact.to_grid(x + exact.linear(hidden, *w["fc2"]))
    assert torch.equal(_bits(fast), _bits(expected))


def test_phase_convolution_computes_the_transposed_convolution():
    torch.manual_seed(3)
    layer = PhaseConvTranspose(32, 3).eval()
    x = torch.randn(2, 32, 9, 13).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = layer(x)
        layer.weight.mul_(-0.5)  # changed weights must reach the cached phase kernel
        changed = layer(x)
    reference = F.conv_transpose2d(x, layer.weight, layer.bias, 2, 2, 1).detach()
    torch.testing.assert_close(changed, reference, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fast, changed)
    assert layer(x).shape == (2, 3, 18, 26)  # training (autograd on) runs the plain layer
