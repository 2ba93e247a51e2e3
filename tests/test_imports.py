"""The decode path stays light: every `informer decode` in a shell loop pays for its imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from conftest import random_image, run_cli

# Modules that cost seconds and that decoding never needs.
HEAVY = ("torchvision", "torch_geometric", "pandas", "matplotlib", "scipy.stats._stats_py", "compressai.zoo")

DECODE_AND_LIST_MODULES = """
import json, sys
from informer_codec.cli import main
try:
    main([\"decode\", sys.argv[1], sys.argv[2], \"--quiet\"])
except SystemExit as done:
    assert not done.code, done.code
print(json.dumps(sorted(sys.modules)))
"""


def test_decode_imports_no_heavy_modules(tiny_weights, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(random_image(40, 56, seed=3)).save(photo)
    for model in ("informer", "mbt2018"):
        inf = tmp_path / f"{model}.inf"
        assert run_cli("encode", photo, inf, "--model", model).returncode == 0
        result = subprocess.run(
            [sys.executable, "-c", DECODE_AND_LIST_MODULES, str(inf), str(tmp_path / f"{model}.png")],
            capture_output=True, timeout=300, check=True,
        )
        loaded = set(json.loads(result.stdout.decode().splitlines()[-1]))
        assert (tmp_path / f"{model}.png").is_file()
        assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_deferred_scipy_stats_still_works_when_asked_for():
    code = (
        "import informer_codec.models.base, scipy.stats, sys;"
        "print(round(float(scipy.stats.norm.ppf(0.975)), 3), type(sys.modules['scipy.stats']).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, check=True)
    assert result.stdout.decode().split() == ["1.96", "module"]


# Blocks compressai's compiled extensions, as on a machine with another Python where only its
# sources are carried, then trains one step and codes an image.
WITHOUT_EXTENSIONS = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("compressai._CXX", "compressai.ans"):
            raise ImportError("blocked for the test: " + name)
sys.meta_path.insert(0, Block())
import numpy as np, torch
from informer_codec.models import ModelConfig, build_model
from informer_codec import codec
model = build_model(ModelConfig(name=sys.argv[1], n=16, m=32))
out = model(torch.rand(2, 3, 64, 64), torch.tensor([10.0, 90.0]))
sum(l.log().sum() for l in out["likelihoods"].values()).backward()
pixels = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
assert codec.decode(codec.encode(pixels, model=sys.argv[1], quality=50).data).pixels.shape == pixels.shape
from compressai import ans
try:
    ans.RansEncoder().encode_with_indexes([], [], [], [], [])
except ImportError as exc:
    print("unavailable:", exc)
"""


@pytest.mark.parametrize("model", ["informer", "mbt2018"])
def test_models_train_and_code_without_compressais_compiled_extensions(model):
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTENSIONS, model], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "unavailable: compressai's compiled compressai.ans does not load here" in result.stdout
