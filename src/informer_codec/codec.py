"""Image <-> container: padding, quality, device, model.compress/decompress <-> chunks."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

import numpy as np

from informer_codec import container
from informer_codec.container import METADATA_CHUNKS, Metadata
from informer_codec.errors import UnsupportedError, WeightsError

DEFAULT_MODEL = "informer"
DEFAULT_QUALITY = 75.0
CODED_CHUNKS = ("SIDE", "LATY")
KNOWN_CHUNKS = CODED_CHUNKS + tuple(METADATA_CHUNKS.values())


@dataclass
class EncodeResult:
    data: bytes
    width: int
    height: int
    seconds: float


@dataclass
class DecodeResult:
    pixels: np.ndarray  # (H, W, 3) uint8
    header: container.Header
    seconds: float
    metadata: Metadata = field(default_factory=Metadata)  # ICC profile and EXIF, as the file carries them


def _as_float32(value: float) -> float:
    """The quality exactly as the header stores it, so both sides use the same gain."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def _pad(x, multiple: int):
    import torch.nn.functional as F

    h, w = x.shape[2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def _load_model(name: str, device: str):
    from informer_codec import weights
    from informer_codec.models import MODEL_NAMES

    if name not in MODEL_NAMES:
        raise UnsupportedError(f"unknown model '{name}' (known: {', '.join(MODEL_NAMES)})")
    return weights.load(name, device)


def encode(pixels: np.ndarray, model: str = DEFAULT_MODEL, quality: float = DEFAULT_QUALITY,
           device: str = "cpu", metadata: Metadata | None = None) -> EncodeResult:
    """Compress (H, W, 3) uint8 RGB pixels into container bytes.

    ``metadata`` (ICC profile, EXIF) goes into ancillary chunks before the coded
    data, as PNG puts iCCP before IDAT; the codec never interprets it.
    """
    import torch

    start = time.perf_counter()
    if not 0 <= quality <= 100:
        raise ValueError("quality must be within 0-100")
    net, digest = _load_model(model, device)
    height, width = pixels.shape[:2]
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div_(255).to(device)
    q = _as_float32(quality)
    latents = net.compress(_pad(x, net.downsample), q)
    header = container.Header(model, digest, q, width, height, latents.checksum)
    chunks = (metadata or Metadata()).chunks() + [("SIDE", latents.side), ("LATY", latents.latent)]
    data = container.write(container.Container(header, chunks))
    return EncodeResult(data, width, height, time.perf_counter() - start)


def decode(data: bytes, device: str = "cpu", limits: container.Limits | None = None) -> DecodeResult:
    """Decompress container bytes to (H, W, 3) uint8 RGB pixels."""
    start = time.perf_counter()
    parsed = container.read(data, limits, known=KNOWN_CHUNKS)  # all checks before torch loads
    header = parsed.header
    if header.colour != container.COLOUR_SRGB:
        raise UnsupportedError(f"colour format {header.colour} needs a newer informer")

    from informer_codec.models import CompressedLatents
    net, digest = _load_model(header.model, device)
    if digest != header.weights_digest:
        raise WeightsError(
            f"file was encoded with other '{header.model}' weights "
            f"(sha256 {header.weights_digest.hex()[:12]}..., loaded {digest.hex()[:12]}...)"
        )
    ds = net.downsample
    padded_h, padded_w = -(-header.height // ds) * ds, -(-header.width // ds) * ds
    latents = CompressedLatents(
        side=parsed.chunk("SIDE"),
        latent=parsed.chunk("LATY"),
        latent_shape=(padded_h // 16, padded_w // 16),
        checksum=header.checksum,
    )
    x_hat = net.decompress(latents, header.quality, device)
    pixels = to_pixels(x_hat, header.width, header.height)
    return DecodeResult(pixels, header, time.perf_counter() - start, parsed.metadata())


def to_pixels(x_hat, width: int, height: int) -> np.ndarray:
    """(1, 3, H', W') in [0, 1] -> cropped (height, width, 3) uint8."""
    import torch

    x_hat = x_hat[0, :, :height, :width]
    pixels = torch.round(x_hat * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(pixels)


def describe(data: bytes) -> dict:
    """What ``informer info`` prints: header fields and bytes per chunk, without torch."""
    parsed = container.read(data, container.Limits(0, 0), known=KNOWN_CHUNKS)
    h = parsed.header
    return {
        "model": h.model,
        "quality": round(h.quality, 4),
        "width": h.width,
        "height": h.height,
        "bytes": len(data),
        "bpp": len(data) * 8 / (h.width * h.height),
        "weights_sha256": h.weights_digest.hex(),
        "chunks": parsed.chunk_sizes(),
    }
