"""Integer arithmetic carried in float64: the entropy-parameter path, exact on any machine.

A decoder that computes a symbol's distribution one ulp differently from the
encoder decodes garbage (CompressAI issues #279, #54, #320). Following Ballé et
al., "Integer networks for data compression with latent-variable models" (ICLR
2019), every value on the path that decides a distribution lives on a fixed
binary grid:

* weights are multiples of ``2**-WEIGHT_BITS``, activations of ``2**-ACT_BITS``;
* a product of a weight and an activation is then a multiple of
  ``2**-(WEIGHT_BITS + ACT_BITS)``, and while every partial sum stays below
  ``2**53`` of those units, float64 adds them *exactly*, in any order, with any
  kernel, thread count or device;
* after each layer the result is rounded back to the activation grid;
* elementwise IEEE operations (``*``, ``/``, ``sqrt``) are correctly rounded
  everywhere, so they are safe; ``exp`` and ``erf`` are not, so softmax and GELU
  use lookup tables that are computed once at export and shipped in the weights.

Rounding is half to even (``torch.round``, or IEEE addition of a constant), itself exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ACT_BITS = 10
WEIGHT_BITS = 16
PROB_BITS = 16
ACT_LIMIT = float(2**14)
EXACT_SUM_LIMIT = float(2 ** (53 - ACT_BITS - WEIGHT_BITS))
LUT_RANGE = 16  # softmax logits below max-16 and GELU inputs beyond +-16 saturate
LUT_SIZE = LUT_RANGE * 2**ACT_BITS + 1


def to_grid(x: Tensor, bits: int = ACT_BITS, limit: float = ACT_LIMIT) -> Tensor:
    """Round ``x`` to a multiple of ``2**-bits`` and clamp it to +-limit."""
    return to_grid_(x * float(2**bits), bits, limit, scaled=True)


def to_grid_(
    x: Tensor, bits: int = ACT_BITS, limit: float | None = ACT_LIMIT, scaled: bool = False
) -> Tensor:
    """:func:`to_grid` in place, for a tensor nobody else holds (``scaled``: already times ``2**bits``).

    The limit is on the grid, so clamping before rounding gives what clamping after
    does. Unscaled float64 values are rounded by adding and subtracting
    ``1.5 * 2**(52 - bits)``: every float64 near that constant is a multiple of
    ``2**-bits``, so IEEE addition (correctly rounded, ties to even, on every CPU and
    GPU) lands on the nearest one, as ``round(x * 2**bits) / 2**bits`` does, in two
    passes instead of three. Only the sign of a zero can differ (+0.0 for -0.0),
    which no later step can see. It needs ``|x| < 2**(51 - bits)``: the clamp
    ensures it, and ``limit=None`` (no clamp) is for values already within the limit.
    Informer's kodim01 latent decode took 335 against 348 ms (median of 8, alternating,
    identical streams and latents; session 21).
    """
    if not scaled and x.dtype == torch.float64:
        if limit is not None:
            x.clamp_(-limit, limit)
        snap = 1.5 * 2.0 ** (52 - bits)
        return x.add_(snap).sub_(snap)
    scale = float(2**bits)
    if not scaled:
        x.mul_(scale)
    x.round_()
    if limit is not None:
        x.clamp_(-limit * scale, limit * scale)
    return x.div_(scale)


def quantize(t: Tensor) -> Tensor:
    """The integer symbols the coder codes for ``t`` (y or z): rounded, in float64 on the CPU,
    within +-ACT_LIMIT so that everything computed from them stays exact."""
    return torch.round(t.double().cpu()).clamp_(-ACT_LIMIT, ACT_LIMIT)


def add_(x: Tensor, other: Tensor) -> Tensor:
    """grid(x + other) in place on ``x``, for two grid values within the limit.

    Their sum is on the grid already and exact, so of the rounding only the clamp is left.
    """
    return x.add_(other).clamp_(-ACT_LIMIT, ACT_LIMIT)


def weight(param: Tensor) -> Tensor:
    """A float parameter as an exact float64 grid weight (on the CPU)."""
    return to_grid(param.detach().to("cpu", torch.float64), WEIGHT_BITS, 2.0**20)


def check_exact(w: Tensor, b: Tensor | None) -> None:
    """Refuse a layer whose partial sums could leave float64's exact range."""
    worst = w.reshape(w.shape[0], -1).abs().sum(dim=1) * ACT_LIMIT
    if b is not None:
        worst = worst + b.abs()
    if float(worst.max()) * 2 ** (ACT_BITS + WEIGHT_BITS) >= 2.0**53:
        raise ValueError("layer weights too large for exact float64 arithmetic")


def linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w.T + b`` on the grid; exact for any summation order."""
    return to_grid_(partial_linear(x, w, b))


def partial_linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w.T + b`` before rounding: an exact sum that another exact sum may complete.

    A layer whose inputs are concatenated (``[a, c] @ [wa, wc].T``) equals
    ``partial_linear(a, wa, b) + c @ wc.T`` exactly, so a part that is known
    early can be computed once for all positions.
    """
    if b is None:
        return x @ w.T
    return torch.addmm(b, x, w.T)


def gemm_layout(weights):
    """``weights`` (nested dicts, lists and tuples) with every 2-D tensor, the GEMM matrices, stored
    as the BLAS of this CPU multiplies ``x @ w.T`` fastest (see
    :func:`informer_codec.hardware.blas_prefers_transposed_weights`).

    Values and shapes stay the same, and so does every result: the sums are exact in any order.
    Informer's kodim01 latent decode took 341 against 360 ms with the transposed layout on an
    Intel Xeon (median of 7, alternating, identical latents and streams; session 20).
    """
    from informer_codec.hardware import blas_prefers_transposed_weights

    return _transposed_storage(weights) if blas_prefers_transposed_weights() else weights


def _transposed_storage(obj):
    if isinstance(obj, Tensor):
        return obj.T.contiguous().T if obj.dim() == 2 else obj
    if isinstance(obj, dict):
        return {key: _transposed_storage(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_transposed_storage(value) for value in obj)
    return obj


def leaky_relu(x: Tensor, slope: float = 0.01) -> Tensor:
    """LeakyReLU of grid values within the limit: one correctly rounded multiply, then back to the grid.

    F.leaky_relu is that multiply in one pass (``x if x > 0 else x * slope``); the
    output is no larger than the input, so it needs no clamp.
    """
    return to_grid_(F.leaky_relu(x, slope), limit=None)


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """LayerNorm over the last dimension with every step exact or correctly rounded.

    The function, step by step (each result rounded to the grid named)::

        centred = grid(x - mean(x)), clamped to +-2**11 (squares of 2048 channels stay exact)
        inv_std = grid16(1 / sqrt(mean(centred**2) + eps))
        result  = grid(grid(centred * inv_std) * gamma + beta)

    It is computed on ``centred`` and ``normed`` kept in grid units (times ``2**ACT_BITS``):
    scaling by a power of two commutes with every correctly rounded operation, so the
    values are the same, with fewer passes over the activation.
    """
    count = x.shape[-1]
    unit = float(2**ACT_BITS)
    mean = x.sum(dim=-1, keepdim=True).div_(count)
    centred = (x - mean).mul_(unit).round_().clamp_(-(2.0**11) * unit, 2.0**11 * unit)
    var = (centred * centred).sum(dim=-1, keepdim=True).div_(count).mul_(1 / unit**2)
    inv_std = to_grid_(var.add_(eps).sqrt_().reciprocal_(), PROB_BITS, 2.0**20)
    normed = centred.mul_(inv_std).round_().clamp_(-ACT_LIMIT * unit, ACT_LIMIT * unit)
    return to_grid_(normed.mul_(gamma).add_(beta * unit), scaled=True)


def build_exp_table() -> Tensor:
    """exp(-k / 2**ACT_BITS) for k = 0..LUT_SIZE-1, as integers in units of 2**-20."""
    k = torch.arange(LUT_SIZE, dtype=torch.float64)
    return torch.round(torch.exp(-k / 2**ACT_BITS) * 2**20)


def centred_grid() -> Tensor:
    """Every grid value in [-16, 16], ascending: entry i of a centred table belongs to the i-th."""
    return torch.arange(-(LUT_SIZE - 1), LUT_SIZE, dtype=torch.float64) / 2**ACT_BITS


def _centred_index(x: Tensor) -> Tensor:
    """Where grid values ``x`` sit in a centred table; beyond +-16 they take the end entries."""
    return (x * 2**ACT_BITS).add_(LUT_SIZE - 1).clamp_(0, 2 * (LUT_SIZE - 1)).long()


def lookup(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` for a 1-D table, through ``index_select``.

    Same values as advanced indexing, which on a (1024, 1536) index took 9.8 ms
    against 3.2 ms here (Zen 4, 2 threads, median of 15).
    """
    return table.index_select(0, index.reshape(-1)).view(index.shape)


def build_cdf_table() -> Tensor:
    """Phi(x) of the standard normal for x on the grid in [-16, 16], in units of 2**-PROB_BITS."""
    x = centred_grid()
    return torch.round(0.5 * torch.erfc(-x / math.sqrt(2.0)) * 2**PROB_BITS)


def softmax(logits: Tensor, exp_table: Tensor) -> Tensor:
    """Softmax over the last dimension through the shipped exp table: exp(logit - max), normalised."""
    below_max = logits.max(dim=-1, keepdim=True).values - logits  # >= 0, exact on the grid
    e = lookup(exp_table, below_max.mul_(2**ACT_BITS).clamp_(max=LUT_SIZE - 1).long())
    return to_grid_(e.div_(e.sum(dim=-1, keepdim=True)), PROB_BITS, limit=None)  # in [0, 1]


def gelu_reference(x: Tensor, cdf_table: Tensor) -> Tensor:
    """x * Phi(x) through the shipped normal-CDF table: the definition :func:`gelu` must match."""
    return to_grid_(x * (lookup(cdf_table, _centred_index(x)) / 2**PROB_BITS))


def build_gelu_table(cdf_table: Tensor) -> Tensor:
    """:func:`gelu_reference` of every grid input in [-16, 16], computed once per model load.

    Built from the shipped CDF table with the same exact operations, so a lookup
    returns bit for bit what the definition computes; beyond the ends the
    definition gives -0.0 (Phi = 0) and x itself (Phi = 1), which :func:`gelu`
    reproduces. The weights files are unchanged.
    """
    if cdf_table[0] != 0 or cdf_table[-1] != 2**PROB_BITS:
        raise ValueError("normal-CDF table must run from 0 to 1")
    return gelu_reference(centred_grid(), cdf_table)


def gelu(x: Tensor, gelu_table: Tensor) -> Tensor:
    """GELU of grid values by one lookup (see :func:`build_gelu_table`).

    Equal to :func:`gelu_reference` for every ``x`` on the grid, with half its
    passes over the data: on the encoder's 1536x1536 MLP activation of a Kodak
    image it took 21 ms against 43-58 ms here (median of 10, idle).
    """
    return torch.where(x > LUT_RANGE, x, lookup(gelu_table, _centred_index(x)))
