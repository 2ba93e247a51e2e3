"""mbt2018: Minnen, Ballé, Toderici, "Joint Autoregressive and Hierarchical Priors
for Learned Image Compression" (NeurIPS 2018)::

    x -g_a-> y -h_a-> z -EB-> z_hat -h_s-> psi ---------.
             y_hat -5x5 masked conv-> phi --------------+-> entropy_parameters -> (sigma, mu)
             y_hat -g_s-> x_hat

The hyperprior z sits at 1/64 of the image resolution, so images are padded
to multiples of 64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from informer_codec.models import exact
from informer_codec.models._compressai import EntropyBottleneck
from informer_codec.models.base import ExactSide, LatentCodecModel, ModelConfig, quantize_side


class Mbt2018(LatentCodecModel):
    """Hyperprior plus 5x5 masked autoregressive context."""

    downsample = 64

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        n, m = config.n, config.m
        self.h_a = nn.Sequential(
            nn.Conv2d(m, n, 3, 1, 1), nn.LeakyReLU(),
            nn.Conv2d(n, n, 5, 2, 2), nn.LeakyReLU(),
            nn.Conv2d(n, n, 5, 2, 2),
        )  # fmt: skip
        self.h_s = nn.Sequential(
            nn.ConvTranspose2d(n, m, 5, 2, 2, output_padding=1), nn.LeakyReLU(),
            nn.ConvTranspose2d(m, m * 3 // 2, 5, 2, 2, output_padding=1), nn.LeakyReLU(),
            nn.Conv2d(m * 3 // 2, 2 * m, 3, 1, 1),
        )  # fmt: skip
        self.entropy_bottleneck = EntropyBottleneck(n)

    def _bottlenecks(self) -> dict[str, nn.Module]:
        return {"z": self.entropy_bottleneck}

    def _side_forward(self, y: Tensor, quantizer: str) -> tuple[Tensor, dict, dict]:
        z = self.h_a(y)
        with torch.autocast(y.device.type, enabled=False):
            z_hat, z_likelihoods = quantize_side(self.entropy_bottleneck, z.float(), quantizer)
        return self.h_s(z_hat), {}, {"z": z_likelihoods}

    def _exact_weights(self) -> dict:
        weights = super()._exact_weights()
        layers = []
        for layer in self.h_s[::2]:
            w, b = exact.weight(layer.weight), exact.weight(layer.bias)
            rows = w.transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else w
            exact.check_exact(rows, b)
            layers.append((w, b))
        weights["h_s"] = layers
        weights["z"] = self.tables["z"].coder_models()
        return weights

    def _exact_hyper_synthesis(self, z_hat: Tensor) -> Tensor:
        """h_s on the grid. float64 convolutions on the CPU multiply and add the exact
        grid values (im2col/direct), so every summation order gives the same result."""
        (w1, b1), (w2, b2), (w3, b3) = self._exact()["h_s"]
        x = exact.leaky_relu(exact.to_grid(F.conv_transpose2d(z_hat, w1, b1, 2, 2, 1)))
        x = exact.leaky_relu(exact.to_grid(F.conv_transpose2d(x, w2, b2, 2, 2, 1)))
        psi = exact.to_grid(F.conv2d(x, w3, b3, 1, 1))
        return psi[0].reshape(psi.shape[1], -1).T  # (h*w, 2M)

    def _encode_side(self, y: Tensor, y_hat: Tensor, encoder) -> ExactSide:
        z_hat = exact.quantize(self.h_a(y)[0])
        symbols = z_hat.reshape(z_hat.shape[0], -1).long().numpy()
        encoder.encode_tables(symbols, self._exact()["z"])
        return ExactSide(psi=self._exact_hyper_synthesis(z_hat[None]), symbols=[symbols])

    def _decode_side(self, decoder, latent_shape: tuple[int, int]) -> ExactSide:
        h, w = latent_shape[0] // 4, latent_shape[1] // 4
        symbols = decoder.decode_tables(self._exact()["z"], h * w)
        symbols = np.clip(symbols, -exact.ACT_LIMIT, exact.ACT_LIMIT)
        z_hat = torch.from_numpy(symbols).double().reshape(1, -1, h, w)
        return ExactSide(psi=self._exact_hyper_synthesis(z_hat), symbols=[symbols])
