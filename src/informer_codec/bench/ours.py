"""Our models through the public codec API: the bytes are real containers, as a user would store."""

from __future__ import annotations

import time

import numpy as np

from informer_codec.bench.metrics import Measurement, measure

WARMUP_SIZE = 64  # pixels per side of the warm-up image


def weights_digest(model: str) -> str:
    """Short sha256 of the weights in use, recorded with every result."""
    from informer_codec import weights

    return weights.load(model, "cpu")[1].hex()[:12]


def warm_up(model: str) -> None:
    """Load the weights and build the model's lazy tables, so the first timed image pays nothing extra."""
    from informer_codec import codec

    pixels = np.full((WARMUP_SIZE, WARMUP_SIZE, 3), 128, np.uint8)
    codec.decode(codec.encode(pixels, model=model, quality=50).data)


def curve_name(model: str, refine: int) -> str:
    """A curve's name: the model's, or ``<model>-refine<N>`` for an encoder that refines."""
    return f"{model}-refine{refine}" if refine else model


def code(model: str, quality: float, pixels: np.ndarray, refine: int = 0) -> Measurement:
    """Encode and decode through informer_codec.codec, timing each call from outside."""
    from informer_codec import codec

    start = time.perf_counter()
    data = codec.encode(pixels, model=model, quality=quality, refine=refine).data
    encoding_time = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decode(data).pixels
    decoding_time = time.perf_counter() - start
    return measure(pixels, decoded, len(data), encoding_time, decoding_time)


def run(models: list[str], qualities: list[float], images: list[np.ndarray], refine: int = 0
        ) -> dict[str, list[list[Measurement]]]:
    """Measurements[model][quality][image] (in this process: the models hold their own threads)."""
    from tqdm import tqdm

    out: dict[str, list[list[Measurement]]] = {}
    for model in models:
        warm_up(model)
        progress = tqdm(total=len(qualities) * len(images), desc=curve_name(model, refine), unit="image")
        out[model] = []
        for quality in qualities:
            row = []
            for pixels in images:
                row.append(code(model, quality, pixels, refine))
                progress.update()
            out[model].append(row)
        progress.close()
    return out
