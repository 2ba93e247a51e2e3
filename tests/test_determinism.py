"""Decoding gives the same symbols whatever the CPU kernels or thread count (issues 2 and 5).

CompressAI's mbt2018 breaks on half the Kodak images when decoded under
``ONEDNN_MAX_CPU_ISA=AVX2`` (other conv kernels, another summation order).
Our entropy-parameter path is exact integer arithmetic, so the latent checksum
must verify in every environment, and the pixels (float synthesis) may differ
by at most one level.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import random_image
from informer_codec.bench.determinism import ENVIRONMENTS, decode_everywhere

OTHER_KERNELS = ENVIRONMENTS["other kernels"]
SHIPPED = Path(__file__).resolve().parents[1] / "weights"


def _encode_all(tmp_path: Path, weights_dir: Path) -> list[Path]:
    from informer_codec import codec, weights

    weights.load.cache_clear()
    files = []
    for i, (model, size) in enumerate([("informer", (37, 53)), ("mbt2018", (70, 45))]):
        result = codec.encode(random_image(*size, seed=i), model=model, quality=20.0 + 30 * i)
        files.append(tmp_path / f"{model}.inf")
        files[-1].write_bytes(result.data)
    weights.load.cache_clear()
    return files


def _check_across_environments(tmp_path: Path, weights_dir: Path) -> None:
    """Another thread count: identical pixels. Other kernels: symbols verify, pixels within 1."""
    decoded = decode_everywhere(_encode_all(tmp_path, weights_dir), tmp_path)
    failed = {name: pixels for name, pixels in decoded.items() if isinstance(pixels, str)}
    assert not failed
    for normal, one_thread, other in zip(*decoded.values(), strict=True):
        assert np.array_equal(normal, one_thread)
        assert np.abs(normal - other).max() <= 1


def test_decode_with_other_kernels_and_threads_verifies_and_matches(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INFORMER_WEIGHTS_DIR", str(weights_dir))
    _check_across_environments(tmp_path, weights_dir)


def test_shipped_weights_decode_the_same_under_other_kernels(tmp_path, monkeypatch):
    assert (SHIPPED / "informer.pt").is_file() and (SHIPPED / "mbt2018.pt").is_file()
    monkeypatch.setenv("INFORMER_WEIGHTS_DIR", str(SHIPPED))
    _check_across_environments(tmp_path, SHIPPED)


def test_kernels_capped_below_the_cpu_turn_bf16_off():
    """Under the other kernels bf16 would be emulated (slow), so the encoder's g_a stays float32 there."""
    probe = "from informer_codec import hardware; print(hardware.bf16_is_fast('cpu'))"
    result = subprocess.run([sys.executable, "-c", probe], env=os.environ | OTHER_KERNELS,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
