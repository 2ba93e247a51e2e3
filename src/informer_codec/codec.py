"""Image <-> container: tiling, padding, quality, device, model.compress/decompress <-> chunks."""

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
TILE_THRESHOLD = 2**21  # pixels; larger images are coded in tiles
TILE_SIZE = 1024  # a multiple of both models' padding (64 and 16)
# Tiles whose latents are decoded side by side: their wavefronts share the parameter path's
# GEMMs (see LatentCodecModel.decode_latents), while pixels are still synthesised one tile at a
# time. On a 2304x1536 image (6 tiles) this took Informer's decode from about 11 s to 7 s and
# peak memory up by 50-65 MiB; 8 together measured no faster than 4.
TILES_DECODED_TOGETHER = 4


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


def tile_size_for(width: int, height: int) -> int:
    """The tile size the encoder uses: whole images up to 2**21 pixels (1920x1080 stays whole,
    Kodak is unchanged), 1024 px tiles above, so memory no longer grows with the image."""
    return TILE_SIZE if width * height > TILE_THRESHOLD else 0


def encode(pixels: np.ndarray, model: str = DEFAULT_MODEL, quality: float = DEFAULT_QUALITY,
           device: str = "cpu", metadata: Metadata | None = None,
           tile_size: int | None = None, refine: int = 0) -> EncodeResult:
    """Compress (H, W, 3) uint8 RGB pixels into container bytes.

    ``metadata`` (ICC profile, EXIF) goes into ancillary chunks before the coded
    data, as PNG puts iCCP before IDAT; the codec never interprets it. Each tile
    (``tile_size``: None picks by image size, 0 is one tile) is coded as an image
    of its own, one at a time, so only one tile is ever held as a float tensor. ``refine``:
    iterations of latent refinement per tile (smaller files, slower encodes; 0: none).
    """
    start = time.perf_counter()
    if not 0 <= quality <= 100:
        raise ValueError("quality must be within 0-100")
    if refine < 0:
        raise ValueError("refine must be 0 or more iterations")
    net, digest = _load_model(model, device)
    height, width = pixels.shape[:2]
    tile_size = tile_size_for(width, height) if tile_size is None else tile_size
    container.check_tile_size(tile_size, ValueError)
    q = _as_float32(quality)
    header = container.Header(model, digest, q, width, height, tile_size)
    chunks = (metadata or Metadata()).chunks()
    for tile in header.tiles():
        chunks += _encode_tile(net, pixels, tile, q, device, refine)
    data = container.write(container.Container(header, chunks))
    return EncodeResult(data, width, height, time.perf_counter() - start)


def _encode_tile(net, pixels: np.ndarray, tile: container.Tile, quality: float, device: str,
                 refine: int) -> list:
    """The SIDE and LATY chunks of one tile, padded on its own as a whole image would be."""
    import torch

    crop = np.array(pixels[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width])  # writable copy
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div_(255).to(device)
    latents = net.compress(_pad(x, net.downsample), quality, refine=refine, size=(tile.height, tile.width))
    return [("SIDE", latents.side), ("LATY", container.pack_latent(latents.checksum, latents.latent))]


def decode(data: bytes, device: str = "cpu", limits: container.Limits | None = None) -> DecodeResult:
    """Decompress container bytes to (H, W, 3) uint8 RGB pixels, tile by tile into one array."""
    start = time.perf_counter()
    parsed = container.read(data, limits, known=KNOWN_CHUNKS)  # all checks before torch loads
    header = parsed.header
    if header.colour != container.COLOUR_SRGB:
        raise UnsupportedError(f"colour format {header.colour} needs a newer informer")
    streams = parsed.tile_streams()  # one SIDE/LATY pair per tile, checked before any decoding

    net, digest = _load_model(header.model, device)
    if digest != header.weights_digest:
        raise WeightsError(
            f"file was encoded with other '{header.model}' weights "
            f"(sha256 {header.weights_digest.hex()[:12]}..., loaded {digest.hex()[:12]}...)"
        )
    pixels = np.empty((header.height, header.width, 3), dtype=np.uint8)
    tiles = list(zip(header.tiles(), streams, strict=True))
    for first in range(0, len(tiles), TILES_DECODED_TOGETHER):
        batch = tiles[first : first + TILES_DECODED_TOGETHER]
        y_hats = net.decode_latents([_tile_latents(net, tile, *chunks) for tile, chunks in batch])
        for (tile, _), y_hat in zip(batch, y_hats, strict=True):
            x_hat = net.synthesize(y_hat, header.quality, device)  # one tile's pixels at a time
            pixels[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] = (
                to_pixels(x_hat, tile.width, tile.height)
            )
    return DecodeResult(pixels, header, time.perf_counter() - start, parsed.metadata())


def _tile_latents(net, tile: container.Tile, side: bytes, latent: bytes):
    """A tile's two chunks as the model's CompressedLatents."""
    from informer_codec.models import CompressedLatents

    checksum, words = container.unpack_latent(latent)
    ds = net.downsample
    padded_h, padded_w = -(-tile.height // ds) * ds, -(-tile.width // ds) * ds
    return CompressedLatents(
        side=side, latent=words, latent_shape=(padded_h // 16, padded_w // 16), checksum=checksum
    )


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
        "tile_size": h.tile_size,
        "tiles": container.tile_count(h.width, h.height, h.tile_size),
        "bytes": len(data),
        "bpp": len(data) * 8 / (h.width * h.height),
        "weights_sha256": h.weights_digest.hex(),
        "chunks": parsed.chunk_sizes(),
    }
