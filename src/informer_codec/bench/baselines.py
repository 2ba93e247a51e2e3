"""Pillow's codecs as baselines: JPEG (4:2:0, 4:4:4), WebP, AVIF (4:2:0, 4:4:4) and JPEG 2000.

Each sweep spans about 0.1-1.5 bpp on Kodak (the range of CompressAI's mbt2018 points); JPEG
cannot go much below 0.2 bpp. Settings are Pillow's defaults except where a default would
handicap the codec (JPEG 2000: 9/7 wavelet and colour transform) or the timing (AVIF: one
thread, as every other codec here runs on one core). Sizes are the complete files Pillow writes.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, features

from informer_codec.bench.metrics import Measurement, measure


@dataclass(frozen=True)
class Baseline:
    name: str
    format: str  # Pillow's format name
    feature: str  # PIL.features name that must be available
    params: tuple[float, ...]  # the sweep, in the unit of ``param_name``
    param_name: str
    options: Callable[[float], dict]  # Pillow save options for one sweep value
    description: str


def _jpeg(subsampling: int) -> Callable[[float], dict]:
    return lambda q: {"quality": int(q), "subsampling": subsampling}


def _avif(subsampling: str) -> Callable[[float], dict]:
    return lambda q: {"quality": int(q), "subsampling": subsampling, "max_threads": 1}


def _jpeg2000(bpp: float) -> dict:
    # quality_layers are compression ratios against 24-bit RGB; 'rates' mode hits the target size.
    return {"quality_mode": "rates", "quality_layers": [24 / bpp], "irreversible": True, "mct": 1,
            "no_jp2": True}


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("jpeg-420", "JPEG", "jpg", (5, 10, 20, 30, 40, 50, 60, 70, 80), "quality", _jpeg(2),
             "JPEG (libjpeg-turbo via Pillow), 4:2:0, Pillow defaults otherwise"),
    Baseline("jpeg-444", "JPEG", "jpg", (5, 10, 20, 30, 40, 50, 60, 70), "quality", _jpeg(0),
             "JPEG (libjpeg-turbo via Pillow), 4:4:4, Pillow defaults otherwise"),
    Baseline("webp", "WEBP", "webp", (0, 5, 15, 30, 50, 70, 80, 85), "quality",
             lambda q: {"quality": int(q)}, "WebP (libwebp via Pillow), lossy, method 4 (default)"),
    Baseline("avif-420", "AVIF", "avif", (10, 20, 30, 40, 50, 60, 70, 78), "quality", _avif("4:2:0"),
             "AVIF (libavif via Pillow), 4:2:0, speed 6 (default), one thread"),
    Baseline("avif-444", "AVIF", "avif", (10, 20, 30, 40, 50, 60, 70, 78), "quality", _avif("4:4:4"),
             "AVIF (libavif via Pillow), 4:4:4, speed 6 (default), one thread"),
    Baseline("jpeg2000", "JPEG2000", "jpg_2000", (0.1, 0.15, 0.25, 0.4, 0.6, 0.8, 1.0, 1.5), "target bpp",
             _jpeg2000, "JPEG 2000 (OpenJPEG via Pillow), codestream, 9/7 wavelet, ICT, rate control"),
)}


def available() -> list[str]:
    """Baselines this Pillow build can write (AVIF and JPEG 2000 are optional in Pillow)."""
    return [name for name, b in BASELINES.items() if features.check(b.feature)]


def code(name: str, param: float, pixels: np.ndarray) -> Measurement:
    """Encode and decode one image in memory, timing both, and score the result."""
    baseline = BASELINES[name]
    image = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    start = time.perf_counter()
    image.save(buffer, format=baseline.format, **baseline.options(param))
    encoding_time = time.perf_counter() - start
    data = buffer.getvalue()
    start = time.perf_counter()
    with Image.open(io.BytesIO(data)) as coded:
        decoded = np.asarray(coded.convert("RGB"))
    decoding_time = time.perf_counter() - start
    return measure(pixels, decoded, len(data), encoding_time, decoding_time)


@lru_cache(maxsize=2)
def _pixels(path: str) -> np.ndarray:
    from informer_codec import images

    return images.load(Path(path).read_bytes(), max_pixels=0).pixels


def _task(name: str, param: float, path: str) -> Measurement:
    """One unit of work for the pool: workers get paths, not pixels, and cache the decoded image."""
    return code(name, param, _pixels(path))


def _init_worker() -> None:
    """One core per worker: --jobs N means N cores, and MS-SSIM should not oversubscribe them."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run(names: list[str], paths: list[Path], jobs: int = 1) -> dict[str, list[list[Measurement]]]:
    """Measurements[name][point][image] for every baseline, sweep value and image.

    ``jobs`` > 1 spreads the work over a spawned process pool (not forked: the parent holds
    torch's thread pools, which do not survive a fork).
    """
    from tqdm import tqdm

    tasks = [(name, i, param, j, str(path)) for name in names
             for i, param in enumerate(BASELINES[name].params) for j, path in enumerate(paths)]
    out = {name: [[None] * len(paths) for _ in BASELINES[name].params] for name in names}
    progress = tqdm(total=len(tasks), desc="baselines", unit="image")
    if jobs <= 1:
        for name, i, param, j, path in tasks:
            out[name][i][j] = _task(name, param, path)
            progress.update()
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            futures = {pool.submit(_task, name, param, path): (name, i, j)
                       for name, i, param, j, path in tasks}
            for future in as_completed(futures):
                name, i, j = futures[future]
                out[name][i][j] = future.result()
                progress.update()
    progress.close()
    return out
