"""Decode the same files in other processes: another thread count, other CPU kernels (issue 5).

Each image is encoded once through the real CLI in a normal process; the files are
then decoded, again through the CLI, in three fresh processes: as the machine is,
with one thread, and with kernels capped below the CPU (``ATEN_CPU_CAPABILITY=default
ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1``, the stand-in for another computer). A
decode that fails its latent checksum exits non-zero and is reported; otherwise the
report counts the 8-bit samples that differ from the normal decode, and by how much.

    python -m informer_codec.bench.determinism IMAGE... [--models informer,mbt2018] [--quality 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ENVIRONMENTS = {
    "normal": {},
    "one thread": {"OMP_NUM_THREADS": "1"},
    "other kernels": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"},
}


def _cli(args: list, env_extra: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "informer_codec", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ | env_extra)


def _decode(files: list[Path], out: Path, env_extra: dict) -> list[np.ndarray] | str:
    """The decoded samples of every file, or the CLI's error when any decode failed."""
    out.mkdir()
    result = _cli(["decode", *files, "-o", out, "--quiet"], env_extra)
    if result.returncode != 0:
        return result.stderr.strip() or f"exit status {result.returncode}"
    return [np.asarray(Image.open(out / f"{f.stem}.png")).astype(np.int16) for f in files]


def decode_everywhere(files: list[Path], folder: Path) -> dict[str, list[np.ndarray] | str]:
    """Each environment's decoded samples of ``files`` (or its error), from a fresh CLI process."""
    return {name: _decode(files, folder / name.replace(" ", "-"), env) for name, env in ENVIRONMENTS.items()}


def check_model(images: list[Path], model: str, quality: float, folder: Path) -> list[str]:
    """Markdown table rows: one per environment other than the normal decode."""
    encoded = folder / model / "inf"
    encoded.mkdir(parents=True)
    result = _cli(["encode", *images, "-o", encoded, "-q", quality, "--model", model, "--quiet"], {})
    if result.returncode != 0:
        raise SystemExit(f"encode failed: {result.stderr.strip()}")
    files = sorted(encoded.glob("*.inf"))
    decoded = decode_everywhere(files, folder / model)
    reference = decoded["normal"]
    if isinstance(reference, str):
        raise SystemExit(f"normal decode failed: {reference}")
    samples = sum(a.size for a in reference)
    rows = []
    for name, pixels in decoded.items():
        if name == "normal":
            continue
        if isinstance(pixels, str):
            rows.append(f"| {model} | {name} | failed: {pixels} | | |")
            continue
        differences = [np.abs(a - b) for a, b in zip(reference, pixels, strict=True)]
        moved = sum(int(np.count_nonzero(d)) for d in differences)
        largest = max(int(d.max()) for d in differences)
        counts = f"{moved:,} of {samples:,}"
        rows.append(f"| {model} | {name} | all {len(files)} verified | {counts} | {largest} |")
    return rows


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--models", default="informer,mbt2018")
    parser.add_argument("--quality", type=float, default=50.0)
    args = parser.parse_args()
    print("| model | decoded with | latent checksums | samples unlike the normal decode | most levels |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models.split(","):
            for row in check_model(args.images, model, args.quality, Path(folder)):
                print(row, flush=True)


if __name__ == "__main__":
    main()
