"""Training crops from a folder of photos, fed fast enough for a 2-core machine.

Decoding a large JPEG costs about as much as a training step here, so every
photo is decoded once and held in memory as uint8 (818 photos take about
0.6 GB). Each crop then picks a photo, a random downscale in [0.5, 1] (which
also hides JPEG artefacts), a region of ``patch / scale`` pixels, resizes it
with antialiasing and flips it at random: cheap next to a step.

A fixed few photos are held out of training for validation crops (never Kodak).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff"}
HOLDOUT_EVERY = 50  # every 50th photo (sorted by name) is a validation photo


def list_images(folder: Path) -> list[Path]:
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images in {folder}")
    return paths


def split(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos): deterministic, by position in name order."""
    held = paths[::HOLDOUT_EVERY]
    held_set = set(held)
    return [p for p in paths if p not in held_set], held


def load_rgb(path: Path, min_side: int) -> torch.Tensor | None:
    """uint8 (3, H, W), or None if the photo is smaller than a crop."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if min(im.size) < min_side:
            return None
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (), generator=generator))


def downscaled_crop(image: torch.Tensor, patch: int, generator: torch.Generator) -> torch.Tensor:
    """A float (1, 3, patch, patch) crop in [0, 1] of a uint8 (3, H, W) photo: a region of
    ``patch / scale`` pixels at a random position, for a random downscale in [0.5, 1], resized."""
    h, w = image.shape[1:]
    low = max(0.5, patch / min(h, w))
    scale = low + (1.0 - low) * float(torch.rand((), generator=generator))
    size = min(int(round(patch / scale)), h, w)
    top, left = _randint(h - size + 1, generator), _randint(w - size + 1, generator)
    region = image[:, top : top + size, left : left + size][None].float() / 255
    if size != patch:
        region = F.interpolate(region, size=(patch, patch), mode="bilinear", antialias=True)
    return region.clamp_(0, 1)


class CropSampler:
    """Random crops from photos held in memory, drawn from its own seeded generator."""

    def __init__(self, paths: list[Path], patch: int, seed: int = 0, device: torch.device | str = "cpu"):
        self.patch = patch
        # On a GPU the photos live in its memory (818 photos: about 0.6 GB) and crops are resized
        # there, so a few CPU cores keep up with it; the random draws stay on this generator.
        self.images = [im.to(device) for im in (load_rgb(p, patch) for p in paths) if im is not None]
        if not self.images:
            raise ValueError(f"no photo is at least {patch} px on its shorter side")
        self.generator = torch.Generator().manual_seed(seed)

    def crop(self) -> torch.Tensor:
        """One float (3, patch, patch) crop in [0, 1], flipped left-right half the time."""
        image = self.images[_randint(len(self.images), self.generator)]
        region = downscaled_crop(image, self.patch, self.generator)
        if _randint(2, self.generator):
            region = region.flip(3)
        return region[0]

    def batch(self, size: int) -> torch.Tensor:
        return torch.stack([self.crop() for _ in range(size)])


def validation_crops(paths: list[Path], patch: int) -> torch.Tensor:
    """Fixed centre crops of the held-out photos, downscaled by up to half first."""
    crops = []
    for path in paths:
        image = load_rgb(path, patch)
        if image is None:
            continue
        scale = max(0.5, patch / min(image.shape[1:]))
        half = F.interpolate(image[None].float() / 255, scale_factor=scale, mode="bilinear", antialias=True)
        h, w = half.shape[2:]
        top, left = (h - patch) // 2, (w - patch) // 2
        crops.append(half[0, :, top : top + patch, left : left + patch].clamp(0, 1))
    if not crops:
        raise ValueError(
            f"no held-out photo (every {HOLDOUT_EVERY}th by name) is at least {patch} px on its shorter side"
        )
    return torch.stack(crops)
