"""Pieces shared by both models: transforms, gain units, context, parameter network, attention.

Each trainable block has a float ``forward`` for training and, where it sits on
the entropy-parameter path, an ``exact`` twin that evaluates the same function
on the integer grid of :mod:`informer_codec.models.exact` from the block's own
parameters (see that module for why).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from informer_codec.models import exact
from informer_codec.models._compressai import GDN as _CompressaiGDN
from informer_codec.models._compressai import MaskedConv2d

# Causal taps of the 5x5 type-A mask: two full rows above, two columns to the left.
CONTEXT_TAPS = [(dh, dw) for dh in (-2, -1) for dw in range(-2, 3)] + [(0, -2), (0, -1)]


GDN_ROWS_PER_CHUNK = 4096  # 4096 pixels x 128 channels x 4 B = 2 MiB: stays in L2/L3 between steps


class GDN(_CompressaiGDN):
    """CompressAI's GDN (same parameters, same function) with a faster inference path.

    Its forward makes four full passes over the activation (square, 1x1 conv,
    rsqrt, multiply), each a new tensor; at 256x384x128 that took 120-140 ms of
    a Kodak encode or decode here. For inference on channels-last input we run
    the same steps on blocks of pixels that stay in cache, as one GEMM per block
    into two reused scratch blocks: about 2.4x faster, and the output agreed to
    the bit with CompressAI's on the layers we measured. The encoder's bf16 analysis
    (autocast) takes the same blocks in bf16; training (autograd) keeps CompressAI's forward.

    ``in_place``: write the result over the input instead of a new tensor. The
    transforms below set it, because each GDN there reads a conv output nobody
    else holds; skipping the fresh 50 MB output (and its page faults) took a GDN
    at Kodak's largest size (128x256x384) from 51-81 ms to 27-37 ms here.
    """

    def __init__(self, *args, in_place: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_place = in_place

    def forward(self, x: Tensor) -> Tensor:
        if (
            torch.is_grad_enabled()
            or x.dim() != 4
            or x.dtype != self._fast_dtype(x.device.type)
            or not x.is_contiguous(memory_format=torch.channels_last)
        ):
            return super().forward(x)
        batch, channels, height, width = x.shape
        beta = self.beta_reparam(self.beta).to(x.dtype)
        gamma_t = self.gamma_reparam(self.gamma).reshape(channels, channels).T.to(x.dtype)
        pixels = x.permute(0, 2, 3, 1).reshape(-1, channels)  # a view: x is channels-last
        out = pixels if self.in_place else torch.empty_like(pixels)
        squares = pixels.new_empty(min(GDN_ROWS_PER_CHUNK, len(pixels)), channels)
        norm = torch.empty_like(squares)
        for start in range(0, len(pixels), GDN_ROWS_PER_CHUNK):
            block = pixels[start : start + GDN_ROWS_PER_CHUNK]
            rows = len(block)
            torch.mul(block, block, out=squares[:rows])
            torch.addmm(beta, squares[:rows], gamma_t, out=norm[:rows])
            factor = norm[:rows].sqrt_() if self.inverse else norm[:rows].rsqrt_()
            torch.mul(block, factor, out=out[start : start + rows])
        return out.reshape(batch, height, width, channels).permute(0, 3, 1, 2)

    @staticmethod
    def _fast_dtype(device_type: str) -> torch.dtype:
        """The dtype CompressAI's forward computes in: autocast's (the encoder's bf16 analysis) or float32.

        Under bf16 autocast its conv and products all run in bf16, and so do the blocks here, which
        gave the same values to the bit on Kodak's largest GDN (256x384x128), in 15 ms instead of 26.
        """
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return torch.float32


class PhaseConvTranspose(nn.ConvTranspose2d):
    """g_s's last layer (5x5, stride 2, to 3 channels), with a faster inference path.

    oneDNN runs a transposed convolution with 3 output channels far below its speed
    on the layers before it. The same function is a 3x3 convolution to 4 x 3 channels,
    one group of 3 for each phase of the stride-2 output grid, then a pixel shuffle:
    44 % more multiply-adds, yet 31 ms against 56 ms alone on Kodak's size here.
    Float rounding differs slightly (2e-5 at most on [0, 1] in that test); the
    synthesis only moves pixels, so that is harmless. Training keeps the plain layer.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 5, 2, 2, output_padding=1)
        self._phases: tuple[tuple, Tensor, Tensor] | None = None

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if (
            torch.is_grad_enabled()
            or output_size is not None
            or x.dim() != 4
            or x.dtype != torch.float32
            or not x.is_contiguous(memory_format=torch.channels_last)
        ):
            return super().forward(x, output_size)
        kernel, bias = self._phase_kernel()
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=1), 2)

    def _phase_kernel(self) -> tuple[Tensor, Tensor]:
        """(4*out, in, 3, 3) kernel and bias; rebuilt whenever the weights change."""
        key = (self.weight.data_ptr(), self.weight._version, self.bias._version)
        if self._phases is None or self._phases[0] != key:
            w = self.weight.detach()  # (in, out, 5, 5)
            kernel = w.new_zeros(self.out_channels, 2, 2, self.in_channels, 3, 3)
            # output row 2i + a reads input rows i + d through tap a + 2 - 2d (likewise columns)
            for a, b, dy, dx in itertools.product(range(2), range(2), (-1, 0, 1), (-1, 0, 1)):
                ky, kx = a + 2 - 2 * dy, b + 2 - 2 * dx
                if ky < 5 and kx < 5:
                    kernel[:, a, b, :, dy + 1, dx + 1] = w[:, :, ky, kx].T
            kernel = kernel.reshape(4 * self.out_channels, self.in_channels, 3, 3)
            bias = self.bias.detach().repeat_interleave(4)
            self._phases = (key, kernel.contiguous(memory_format=torch.channels_last), bias)
        return self._phases[1], self._phases[2]


def analysis_transform(n: int, m: int) -> nn.Sequential:
    """g_a: four 5x5 stride-2 convs with GDN, x (3 ch) -> y (m ch) at 1/16 resolution."""
    return nn.Sequential(
        nn.Conv2d(3, n, 5, 2, 2), GDN(n, in_place=True),
        nn.Conv2d(n, n, 5, 2, 2), GDN(n, in_place=True),
        nn.Conv2d(n, n, 5, 2, 2), GDN(n, in_place=True),
        nn.Conv2d(n, m, 5, 2, 2),
    )  # fmt: skip


def synthesis_transform(n: int, m: int) -> nn.Sequential:
    """g_s: the mirror of g_a with transposed convs and inverse GDN."""
    return nn.Sequential(
        nn.ConvTranspose2d(m, n, 5, 2, 2, output_padding=1), GDN(n, inverse=True, in_place=True),
        nn.ConvTranspose2d(n, n, 5, 2, 2, output_padding=1), GDN(n, inverse=True, in_place=True),
        nn.ConvTranspose2d(n, n, 5, 2, 2, output_padding=1), GDN(n, inverse=True, in_place=True),
        PhaseConvTranspose(n, 3),
    )  # fmt: skip


class GainUnits(nn.Module):
    """Continuous quality by per-channel gains (Cui et al., CVPR 2021).

    ``levels`` gain vectors scale y before quantisation and ``levels`` inverse
    vectors undo it before synthesis. A quality in [0, 100] is a position along
    the levels; between two levels the vectors interpolate geometrically, which
    gives a smooth rate curve from one model.

    Gains start at sqrt(lambda / lambda_mid): high-rate theory puts the best
    quantiser step at 1/sqrt(lambda), so each quality begins at its own operating
    point instead of all levels sharing one until training separates them.
    """

    def __init__(self, lambdas: list[float], channels: int):
        super().__init__()
        self.levels = len(lambdas)
        lam = torch.tensor(lambdas, dtype=torch.float32)
        start = torch.sqrt(lam / lam[len(lambdas) // 2])[:, None].expand(-1, channels)
        self.gain = nn.Parameter(start.clone())
        self.inverse_gain = nn.Parameter(1 / start)

    def position(self, quality: Tensor) -> tuple[Tensor, Tensor]:
        """Lower level index and the fraction towards the next one, per sample."""
        pos = torch.clamp(quality, 0.0, 100.0) / 100.0 * (self.levels - 1)
        lower = torch.clamp(pos.floor().long(), 0, self.levels - 2)
        return lower, (pos - lower).unsqueeze(1)

    def _interpolate(self, table: Tensor, quality: Tensor) -> Tensor:
        lower, frac = self.position(quality)
        log_table = torch.log(table.abs() + 1e-6)
        mixed = log_table[lower] * (1 - frac) + log_table[lower + 1] * frac
        return torch.exp(mixed)[:, :, None, None]

    def scale(self, y: Tensor, quality: Tensor) -> Tensor:
        return y * self._interpolate(self.gain, quality).to(y.dtype)

    def unscale(self, y_hat: Tensor, quality: Tensor) -> Tensor:
        return y_hat * self._interpolate(self.inverse_gain, quality).to(y_hat.dtype)


def interpolate_lambda(lambdas: list[float], quality: Tensor) -> Tensor:
    """Rate-distortion weight for each quality, geometric between the trained levels."""
    logs = torch.log(torch.tensor(lambdas, dtype=torch.float32, device=quality.device))
    pos = torch.clamp(quality, 0.0, 100.0) / 100.0 * (len(lambdas) - 1)
    lower = torch.clamp(pos.floor().long(), 0, len(lambdas) - 2)
    frac = pos - lower
    return torch.exp(logs[lower] * (1 - frac) + logs[lower + 1] * frac)


class ContextModel(nn.Module):
    """5x5 type-A masked conv over y_hat, M -> 2M (the autoregressive context)."""

    def __init__(self, m: int):
        super().__init__()
        self.conv = MaskedConv2d(m, 2 * m, kernel_size=5, padding=2, stride=1)

    def forward(self, y_hat: Tensor) -> Tensor:
        return self.conv(y_hat)

    def exact_weights(self) -> tuple[Tensor, Tensor]:
        """(2M, 12*M) weight over the causal taps, tap-major as :class:`PaddedLatent` gathers them."""
        taps = [self.conv.weight[:, :, 2 + dh, 2 + dw] for dh, dw in CONTEXT_TAPS]
        w = exact.weight(torch.stack(taps, dim=1).flatten(1))
        b = exact.weight(self.conv.bias)
        exact.check_exact(w, b)
        return w, b


class PaddedLatent:
    """y_hat during coding: one row of M values per position of the latent padded by 2
    (top, left and right; zeros outside the image).

    Position-major, so a wavefront's causal neighbourhoods are one gather of whole
    rows, and its decoded values one row write, instead of strided per-channel copies.
    """

    def __init__(self, m: int, height: int, width: int):
        self.height, self.width, self.stride = height, width, width + 4
        self.rows = torch.zeros((height + 2) * self.stride, m, dtype=torch.float64)
        self.tap_offsets = torch.tensor([dh * self.stride + dw for dh, dw in CONTEXT_TAPS])

    @classmethod
    def of(cls, y_hat: Tensor) -> PaddedLatent:
        """The encoder's whole quantised latent (M, h, w)."""
        m, height, width = y_hat.shape
        padded = cls(m, height, width)
        padded.interior()[:] = y_hat.permute(1, 2, 0)
        return padded

    def interior(self) -> Tensor:
        """(h, w, M) view of the positions inside the image."""
        grid = self.rows.view(self.height + 2, self.stride, -1)
        return grid[2:, 2 : 2 + self.width]

    def index(self, rows: Tensor, cols: Tensor) -> Tensor:
        return (rows + 2) * self.stride + cols + 2

    def neighbourhoods(self, rows: Tensor, cols: Tensor) -> Tensor:
        """(n, 12*M) causal neighbourhoods of positions (rows, cols), tap-major."""
        taps = self.index(rows, cols)[:, None] + self.tap_offsets[None, :]
        return self.rows[taps.reshape(-1)].reshape(len(rows), -1)

    def write(self, rows: Tensor, cols: Tensor, values: Tensor) -> None:
        """Store decoded values (n, M) at positions (rows, cols)."""
        self.rows[self.index(rows, cols)] = values

    def latent(self) -> Tensor:
        """The quantised latent (M, h, w), contiguous."""
        return self.interior().permute(2, 0, 1).contiguous()


class EntropyParameters(nn.Module):
    """1x1 conv stack 4M -> 10M/3 -> 8M/3 -> 2M; output is (scales, means)."""

    def __init__(self, m: int):
        super().__init__()
        widths = [4 * m, 10 * m // 3, 8 * m // 3, 2 * m]
        self.layers = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, features: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            features = layer(features)
            if i < len(self.layers) - 1:
                features = F.leaky_relu(features)
        return features

    def exact_weights(self) -> list[tuple[Tensor, Tensor]]:
        return [exact_linear_weights(layer) for layer in self.layers]


def cat_rows(parts: list[Tensor]) -> Tensor:
    """torch.cat of row blocks (one per image), without the copy when there is only one."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def exact_linear_weights(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """Grid weights (out, in) and bias of a Linear or 1x1 Conv2d."""
    w = exact.weight(layer.weight.reshape(layer.weight.shape[0], -1))
    b = exact.weight(layer.bias)
    exact.check_exact(w, b)
    return w, b


def exact_mlp(x: Tensor, weights: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Linear layers with LeakyReLU between them, on the grid."""
    for i, (w, b) in enumerate(weights):
        x = exact.linear(x, w, b)
        if i < len(weights) - 1:
            x = exact.leaky_relu(x)
    return x


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention transformer block (Informer's CABlock).

    Queries attend to a small set of keys/values, then an MLP; both residual.
    With 8 keys per query the cost is linear in the number of queries.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def _split(self, t: Tensor) -> Tensor:
        b, n, d = t.shape
        return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        """queries (B, Nq, D), context (B, Nk, D) -> (B, Nq, D)."""
        kv = self.norm_kv(context)
        q = self._split(self.q(self.norm_q(queries)))
        k, v = self._split(self.k(kv)), self._split(self.v(kv))
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(queries.shape)
        x = queries + self.proj(attended)
        return x + self.fc2(F.gelu(self.fc1(self.norm_mlp(x))))

    def exact_keys_values(self, context: Tensor) -> dict[str, Tensor]:
        """Exact keys and values for one image's context (Nk, D): computed once per image,
        already split into heads as the attention multiplies them: keys (H, D/H, Nk),
        values (H, Nk, D/H)."""
        kv = exact.layer_norm(context, *self._exact_norm(self.norm_kv))
        keys = exact.linear(kv, *exact_linear_weights(self.k))
        values = exact.linear(kv, *exact_linear_weights(self.v))
        return {
            "k": self._heads(keys).transpose(1, 2).contiguous(),
            "v": self._heads(values).contiguous(),
        }

    def _heads(self, t: Tensor) -> Tensor:
        """(n, D) -> (H, n, D/H)."""
        return t.reshape(t.shape[0], self.heads, -1).transpose(0, 1)

    @staticmethod
    def _exact_norm(norm: nn.LayerNorm) -> tuple[Tensor, Tensor]:
        return exact.weight(norm.weight), exact.weight(norm.bias)

    def exact_weights(self) -> dict[str, tuple[Tensor, Tensor]]:
        names = ("q", "proj", "fc1", "fc2")
        weights = {name: exact_linear_weights(getattr(self, name)) for name in names}
        weights["norm_q"] = self._exact_norm(self.norm_q)
        weights["norm_mlp"] = self._exact_norm(self.norm_mlp)
        return weights

    def exact_forward(
        self, queries: Tensor, kv: list[tuple[dict[str, Tensor], int]], w: dict, tables: dict[str, Tensor]
    ) -> Tensor:
        """The block on the grid: queries (n, D), the first ``count`` rows attending to the
        first image's keys/values (Nk, D), the next ``count`` to the second's, and so on."""
        q = exact.linear(exact.layer_norm(queries, *w["norm_q"]), *w["q"])
        parts = zip(q.split([count for _, count in kv]), kv, strict=True)
        attended = cat_rows([self._exact_attend(part, keys, tables) for part, (keys, _) in parts])
        x = exact.add_(exact.linear(attended, *w["proj"]), queries)
        hidden = exact.gelu(exact.linear(exact.layer_norm(x, *w["norm_mlp"]), *w["fc1"]), tables["gelu"])
        return exact.add_(exact.linear(hidden, *w["fc2"]), x)

    def _exact_attend(self, q: Tensor, kv: dict[str, Tensor], tables: dict[str, Tensor]) -> Tensor:
        """Multi-head attention of projected queries (n, D) to one image's keys and values."""
        n, d = q.shape
        # grid(q.k / sqrt(head)) with the grid's power-of-two scale folded into the one multiply
        scale = 2**exact.ACT_BITS / math.sqrt(d // self.heads)
        logits = exact.to_grid_(torch.matmul(self._heads(q), kv["k"]).mul_(scale), scaled=True)
        probs = exact.softmax(logits, tables["exp"])
        return exact.to_grid_(probs @ kv["v"]).transpose(0, 1).reshape(n, d)
