"""Model registry by name (never by position: a name in a file keeps its meaning).

Only the names load eagerly; the torch modules load on first use, so the
container checks and ``informer info`` never import torch.
"""

from __future__ import annotations

MODEL_NAMES = ("informer", "mbt2018")


def build_model(config):
    """A fresh (untrained) model for ``config.name``."""
    if config.name == "informer":
        from informer_codec.models.informer import Informer

        return Informer(config)
    if config.name == "mbt2018":
        from informer_codec.models.mbt2018 import Mbt2018

        return Mbt2018(config)
    raise ValueError(f"unknown model {config.name!r} (known: {', '.join(MODEL_NAMES)})")


def __getattr__(name: str):
    if name in ("CompressedLatents", "LatentCodecModel", "ModelConfig"):
        from informer_codec.models import base

        return getattr(base, name)
    raise AttributeError(name)
