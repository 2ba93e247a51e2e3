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
from PIL import Image

from conftest import random_image, run_cli

OTHER_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
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


def _decode_in_fresh_process(files: list[Path], out: Path, weights_dir: Path, env: dict) -> list[np.ndarray]:
    out.mkdir()
    result = run_cli("decode", *files, "-o", out, env_extra={"INFORMER_WEIGHTS_DIR": str(weights_dir)} | env)
    assert result.returncode == 0, result.stderr.decode()
    return [np.asarray(Image.open(out / (f.stem + ".png"))).astype(int) for f in files]


def _check_across_environments(tmp_path: Path, weights_dir: Path) -> None:
    """Another thread count: identical pixels. Other kernels: symbols verify, pixels within 1."""
    files = _encode_all(tmp_path, weights_dir)
    two_threads = _decode_in_fresh_process(files, tmp_path / "a", weights_dir, {"OMP_NUM_THREADS": "2"})
    one_thread = _decode_in_fresh_process(files, tmp_path / "b", weights_dir, {"OMP_NUM_THREADS": "1"})
    other = _decode_in_fresh_process(files, tmp_path / "c", weights_dir, OTHER_KERNELS)
    for a, b, c in zip(two_threads, one_thread, other, strict=True):
        assert np.array_equal(a, b)
        assert np.abs(a - c).max() <= 1


def test_decode_with_other_kernels_and_threads_verifies_and_matches(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INFORMER_WEIGHTS_DIR", str(weights_dir))
    _check_across_environments(tmp_path, weights_dir)


def test_shipped_weights_decode_the_same_under_other_kernels(tmp_path, monkeypatch):
    assert (SHIPPED / "informer.pt").is_file() and (SHIPPED / "mbt2018.pt").is_file()
    monkeypatch.setenv("INFORMER_WEIGHTS_DIR", str(SHIPPED))
    _check_across_environments(tmp_path, SHIPPED)


def test_kernels_capped_below_the_cpu_turn_bf16_off():
    """Under the other kernels bf16 would be emulated (slow), so the decoder keeps g_s in float32 there."""
    probe = "from informer_codec import hardware; print(hardware.bf16_is_fast('cpu'))"
    result = subprocess.run([sys.executable, "-c", probe], env=os.environ | OTHER_KERNELS,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
