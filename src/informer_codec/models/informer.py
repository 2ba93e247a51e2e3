"""Informer: Kim, Heo, Lee, "Joint Global and Local Hierarchical Priors for Learned
Image Compression" (CVPR 2022)::

    x -g_a-> y -1x1 local_h_a-> z_l -EB_l-> z_l_hat -1x1 local_h_s-> psi_l ------------.
             y -cross-attn from 8 learned tokens (ca_a)-> z_g -EB_g-> z_g_hat           |
                   z_g_hat -global_h_s-> G (8 global tokens)                            |
             y_hat -5x5 masked conv-> phi -cross-attn to G (ca_s)-> phi' ---------------+-> entropy_parameters
             y_hat -g_s-> x_hat

z_l keeps y's resolution (1x1 convs), z_g is M scalars per image, so images
are padded to multiples of 16 only. Each position's attention uses only its
own query and the global keys, so ca_s is causal without any mask.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from informer_codec.models import exact
from informer_codec.models._compressai import EntropyBottleneck
from informer_codec.models.base import ExactSide, LatentCodecModel, ModelConfig, quantize_side
from informer_codec.models.blocks import CrossAttentionBlock, exact_linear_weights, exact_mlp


def _heads(dim: int) -> int:
    return max(1, dim // 64)


class Informer(LatentCodecModel):
    """Joint global (learned tokens) and local (1x1) hyperpriors with an attentive context."""

    downsample = 16

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        m, t = config.m, config.tokens
        self.local_h_a = nn.Sequential(
            nn.Conv2d(m, m // 4, 1), nn.LeakyReLU(), nn.Conv2d(m // 4, m // 16, 1)
        )
        self.local_h_s = nn.Sequential(
            nn.Conv2d(m // 16, m // 2, 1), nn.LeakyReLU(), nn.Conv2d(m // 2, 2 * m, 1)
        )
        self.local_bottleneck = EntropyBottleneck(m // 16)
        self.global_queries = nn.Parameter(torch.randn(t, m))
        self.ca_a = CrossAttentionBlock(m, _heads(m))
        self.global_h_a = nn.Linear(m, m // t)
        self.global_bottleneck = EntropyBottleneck(m // t * t)
        self.global_h_s = nn.Linear(m // t, 2 * m)
        self.ca_s = CrossAttentionBlock(2 * m, _heads(2 * m))
        self.register_buffer("exp_table", torch.zeros(exact.LUT_SIZE, dtype=torch.int32))
        self.register_buffer("cdf_table", torch.zeros(2 * exact.LUT_SIZE - 1, dtype=torch.int32))

    def _bottlenecks(self) -> dict[str, nn.Module]:
        return {"z_l": self.local_bottleneck, "z_g": self.global_bottleneck}

    def _build_lookup_tables(self) -> None:
        self.exp_table.copy_(exact.build_exp_table().int())
        self.cdf_table.copy_(exact.build_cdf_table().int())

    def _global_latent(self, y: Tensor) -> Tensor:
        """z_g (B, M): what the learned tokens read from all of y."""
        b = y.shape[0]
        sequence = y.flatten(2).transpose(1, 2)
        queries = self.global_queries.to(y.dtype).expand(b, -1, -1)
        return self.global_h_a(self.ca_a(queries, sequence)).reshape(b, -1)

    def _side_forward(self, y: Tensor, quantizer: str) -> tuple[Tensor, dict, dict]:
        b = y.shape[0]
        z_l = self.local_h_a(y)
        z_g = self._global_latent(y)
        with torch.autocast(y.device.type, enabled=False):
            z_l_hat, z_l_likelihoods = quantize_side(self.local_bottleneck, z_l.float(), quantizer)
            z_g = z_g.float()[:, :, None, None]
            z_g_hat, z_g_likelihoods = quantize_side(self.global_bottleneck, z_g, quantizer)
        tokens = self.global_h_s(z_g_hat.reshape(b, self.config.tokens, -1))
        likelihoods = {"z_l": z_l_likelihoods, "z_g": z_g_likelihoods}
        return self.local_h_s(z_l_hat), {"tokens": tokens}, likelihoods

    def _context_forward(self, phi: Tensor, extra: dict) -> Tensor:
        b, c, h, w = phi.shape
        queries = phi.flatten(2).transpose(1, 2)
        out = self.ca_s(queries, extra["tokens"].to(queries.dtype))
        return out.transpose(1, 2).reshape(b, c, h, w)

    def _exact_weights(self) -> dict:
        weights = super()._exact_weights()
        weights["local_h_s"] = [exact_linear_weights(layer) for layer in self.local_h_s[::2]]
        weights["global_h_s"] = exact_linear_weights(self.global_h_s)
        weights["ca_s"] = self.ca_s.exact_weights()
        weights["lut"] = {
            "exp": self.exp_table.cpu().double(),
            "gelu": exact.build_gelu_table(self.cdf_table.cpu().double()),
        }
        weights["z_l"] = self.tables["z_l"].coder_models()
        weights["z_g"] = self.tables["z_g"].coder_models()
        return weights

    def _exact_side(self, z_l_hat: Tensor, z_g_hat: Tensor, symbols: list) -> ExactSide:
        weights = self._exact()
        psi = exact_mlp(z_l_hat.reshape(z_l_hat.shape[0], -1).T, weights["local_h_s"])
        tokens = exact.linear(z_g_hat.reshape(self.config.tokens, -1), *weights["global_h_s"])
        kv = self.ca_s.exact_keys_values(tokens)
        return ExactSide(psi=psi, context={"kv": kv}, symbols=symbols)

    def _exact_context(self, phi: Tensor, sides: list[tuple[ExactSide, int]]) -> Tensor:
        weights = self._exact()
        kv = [(side.context["kv"], count) for side, count in sides]
        return self.ca_s.exact_forward(phi, kv, weights["ca_s"], weights["lut"])

    def _encode_side(self, y: Tensor, y_hat: Tensor, encoder) -> ExactSide:
        z_l_hat = exact.quantize(self.local_h_a(y)[0])
        z_g_hat = exact.quantize(self._global_latent(y)[0])
        local_symbols = z_l_hat.reshape(z_l_hat.shape[0], -1).long().numpy()
        global_symbols = z_g_hat.reshape(-1, 1).long().numpy()
        encoder.encode_tables(local_symbols, self._exact()["z_l"])
        encoder.encode_tables(global_symbols, self._exact()["z_g"])
        return self._exact_side(z_l_hat, z_g_hat, [local_symbols, global_symbols])

    def _decode_side(self, decoder, latent_shape: tuple[int, int]) -> ExactSide:
        h, w = latent_shape
        local_symbols = decoder.decode_tables(self._exact()["z_l"], h * w)
        global_symbols = decoder.decode_tables(self._exact()["z_g"], 1)
        local_symbols = np.clip(local_symbols, -exact.ACT_LIMIT, exact.ACT_LIMIT)
        global_symbols = np.clip(global_symbols, -exact.ACT_LIMIT, exact.ACT_LIMIT)
        z_l_hat = torch.from_numpy(local_symbols).double().reshape(-1, h, w)
        z_g_hat = torch.from_numpy(global_symbols).double().reshape(-1)
        return self._exact_side(z_l_hat, z_g_hat, [local_symbols, global_symbols])
