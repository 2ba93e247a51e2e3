"""Reading and writing images with Pillow: what a cwebp/avifenc user would expect.

* RGB 8-bit is coded as it is.
* Grayscale and palette images become RGB (decoded as RGB), with a notice.
* 16-bit and float images are reduced to 8 bits per channel, with a notice.
* An alpha channel that is fully opaque is dropped with a notice; real
  transparency cannot be carried and is refused with a clear error.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from informer_codec.errors import InputError, LimitError


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8
    notices: list[str] = field(default_factory=list)


def _to_rgb(image: Image.Image, notices: list[str]) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        notices.append(f"{mode} image reduced to 8 bits per channel")
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(array / peak * 255), 0, 255).astype(np.uint8))
        mode = "L"
    if "A" in mode or mode == "P" and "transparency" in image.info:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            raise InputError("image has transparency, which informer cannot store (flatten it first)")
        notices.append("opaque alpha channel dropped")
        return rgba.convert("RGB")
    if mode != "RGB":
        notices.append(f"{mode} image converted to RGB")
        return image.convert("RGB")
    return image


def load(data: bytes, max_pixels: int) -> LoadedImage:
    """Decode image bytes (any format Pillow reads) to 8-bit RGB."""
    if not data:
        raise InputError("input is empty")
    notices: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if max_pixels and width * height > max_pixels:
                raise LimitError(
                    f"image is {width}x{height}, over the limit of {max_pixels} pixels "
                    "(raise it with --max-pixels)"
                )
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("input is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"input image is damaged ({exc})") from None
    pixels = np.asarray(_to_rgb(image, notices), dtype=np.uint8)
    return LoadedImage(np.array(pixels, dtype=np.uint8, copy=True), notices)


def output_format(path: str) -> str:
    """Pillow format name for an output path; '-' (stdout) is PNG."""
    if path == "-":
        return "PNG"
    extension = Path(path).suffix.lower()
    Image.init()
    fmt = Image.EXTENSION.get(extension)
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"cannot write images with extension '{extension or '(none)'}'")
    return fmt


def encode_image(pixels: np.ndarray, fmt: str) -> bytes:
    """RGB uint8 pixels to file bytes in a Pillow format (PNG, TIFF, JPEG at q95, ...)."""
    buffer = io.BytesIO()
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels, "RGB").save(buffer, format=fmt, **options)
    return buffer.getvalue()
