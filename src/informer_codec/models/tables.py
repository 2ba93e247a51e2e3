"""Integer probability tables of the factorized entropy bottlenecks, frozen at export.

The bottleneck's learned density is evaluated with sigmoid/softplus, which
differ across machines in the last bits. So we evaluate it once, when the
weights are exported, turn it into integer counts and ship those: encoder and
decoder then read the very same numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

COUNT_BITS = 16
MAX_TABLE = 2048  # symbols per channel; anything further out is escaped


class FactorizedTables(nn.Module):
    """Per-channel integer tables over symbols ``lo[c] .. lo[c] + length[c] - 1``.

    The first and last symbol of each table also stand for everything below
    and above it (the coder escapes the excess).
    """

    def __init__(self, channels: int = 0, width: int = 0):
        super().__init__()
        self.register_buffer("lo", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("length", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("counts", torch.zeros(channels, width, dtype=torch.int32))

    @classmethod
    def from_bottleneck(cls, bottleneck: nn.Module) -> FactorizedTables:
        quantiles = bottleneck.quantiles.detach().double()[:, 0, :]
        median = torch.round(quantiles[:, 1])
        lo = torch.clamp(torch.floor(quantiles[:, 0]) - 1, median - MAX_TABLE // 2, median - 1)
        hi = torch.clamp(torch.ceil(quantiles[:, 2]) + 1, median + 1, lo + MAX_TABLE - 1)
        length = (hi - lo + 1).long()
        width = int(length.max())
        samples = lo[:, None] + torch.arange(width, dtype=torch.float64)[None, :]
        pmf, lower, upper = bottleneck._likelihood(samples[:, None, :].float(), stop_gradient=True)
        pmf = pmf[:, 0, :].double()
        below = torch.sigmoid(lower[:, 0, 0].double())
        inside = torch.arange(width)[None, :] < length[:, None]
        last = (length - 1)[:, None]
        above = 1 - torch.sigmoid(upper[:, 0, :].double().gather(1, last))[:, 0]
        pmf = torch.where(inside, pmf, torch.zeros_like(pmf))
        pmf[:, 0] += below
        pmf.scatter_add_(1, last, above[:, None])
        counts = torch.where(inside, torch.clamp(torch.round(pmf * 2**COUNT_BITS), min=1), 0)
        tables = cls(len(lo), width)
        tables.lo.copy_(lo.int())
        tables.length.copy_(length.int())
        tables.counts.copy_(counts.int())
        return tables

    def coder_models(self):
        """The tables as the entropy coder's models (built once per loaded model)."""
        from informer_codec.coder import TableModels

        return TableModels(self.lo.cpu().numpy(), self.length.cpu().numpy(), self.counts.cpu().numpy())

    def resize_like(self, state: dict[str, Tensor], prefix: str) -> None:
        """Reshape the buffers to a saved state's shapes before ``load_state_dict``."""
        for name in ("lo", "length", "counts"):
            setattr(self, name, torch.zeros_like(state[prefix + name]))
