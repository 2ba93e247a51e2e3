"""A GPU round's luggage: training crops and compressai's Python sources, small enough to travel.

A lent GPU machine gets only this checkout (at most 64 MiB, of which the shipped
weights take 35) and has its own Python with torch but without compressai.
So this writes, into one ignored folder:

* ``train/``: one JPEG crop per training photo, from a random downscale in
  [0.5, 1] (:func:`~informer_codec.train.data.downscaled_crop`, as training draws them), of
  ``--size`` pixels: 818 photos at 256 px and quality 90 make about 20 MB;
* ``compressai/``: compressai's ``.py`` files only; its compiled extensions are
  built for this machine's Python, and our models run without them (see
  :mod:`informer_codec.models._compressai`).

    python -m informer_codec.train.pack --dataset ../shared/data/train --out data-cache/gpu
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import torch
from PIL import Image

from informer_codec.train.data import downscaled_crop, list_images, load_rgb


def pack_crops(dataset: Path, out: Path, size: int, quality: int, seed: int = 0) -> int:
    """Write one crop per photo (those at least ``size`` px) to ``out``; returns their bytes."""
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    total = 0
    for path in list_images(dataset):
        image = load_rgb(path, size)
        if image is None:
            continue
        target = out / f"{path.stem}.jpg"
        crop = downscaled_crop(image, size, generator)[0].mul(255).round().byte().permute(1, 2, 0)
        Image.fromarray(crop.numpy()).save(target, quality=quality, subsampling=0)
        total += target.stat().st_size
    return total


def pack_compressai_sources(out: Path) -> int:
    """Copy compressai's Python files (no compiled extensions) to ``out/compressai``."""
    spec = importlib.util.find_spec("compressai")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("compressai is not installed")
    source = Path(next(iter(spec.submodule_search_locations)))
    target = out / "compressai"
    shutil.rmtree(target, ignore_errors=True)
    total = 0
    for path in source.rglob("*.py"):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        total += path.stat().st_size
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args(argv)
    crops = pack_crops(args.dataset, args.out / "train", args.size, args.quality)
    sources = pack_compressai_sources(args.out)
    print(f"{args.out}: crops {crops / 2**20:.1f} MiB, compressai sources {sources / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
