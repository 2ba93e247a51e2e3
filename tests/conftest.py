"""Small seeded models saved as real weights files, so tests run fast and need no ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "informer_codec" / "data" / "sample.png"


def tiny_model(name: str, seed: int = 0):
    """A seeded untrained model with latents big enough to exercise every coding path."""
    from informer_codec.models import build_model
    from informer_codec.models.base import ModelConfig

    torch.manual_seed(seed)
    model = build_model(ModelConfig(name=name, n=16, m=32))
    with torch.no_grad():  # untrained latents are nearly all zero; widen them
        model.g_a[-1].weight.mul_(40)
        hyper = [model.h_a[-1]] if name == "mbt2018" else [model.local_h_a[-1], model.global_h_a]
        for layer in hyper:
            layer.weight.mul_(40)
    model.freeze()
    return model


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    from informer_codec.weights import save_file

    folder = tmp_path_factory.mktemp("weights")
    for name in ("informer", "mbt2018"):
        save_file(tiny_model(name), folder / f"{name}.pt")
    return folder


@pytest.fixture()
def tiny_weights(weights_dir, monkeypatch) -> Path:
    """Point the codec (in this process and in subprocesses) at the tiny weights."""
    from informer_codec import weights

    monkeypatch.setenv("INFORMER_WEIGHTS_DIR", str(weights_dir))
    weights.load.cache_clear()
    yield weights_dir
    weights.load.cache_clear()


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random content (not white noise), like a photo at low resolution."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    from PIL import Image

    return np.array(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def run_cli(*args, env_extra: dict | None = None, stdin: bytes | None = None, cwd=None):
    """Run the real CLI in a fresh process."""
    env = dict(os.environ) | (env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "informer_codec", *map(str, args)],
        input=stdin, capture_output=True, env=env, cwd=cwd, timeout=300,
    )
