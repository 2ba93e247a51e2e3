"""Reading and writing images with Pillow: what a cwebp/avifenc user would expect.

* RGB 8-bit is coded as it is.
* Grayscale and palette images become RGB (decoded as RGB), with a notice.
* 16-bit and float images are reduced to 8 bits per channel, with a notice.
* An alpha channel that is fully opaque is dropped with a notice; real
  transparency cannot be carried and is refused with a clear error.
* The ICC profile and EXIF travel with the image, as avifenc and cjxl keep
  them: the pixels are stored as they are, so their colour space and
  orientation must stay with them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from informer_codec.container import Metadata
from informer_codec.errors import InputError, LimitError

EXIF_PREFIX = b"Exif\x00\x00"  # JPEG's APP1 marker prefix; our eXIF chunk holds the bare TIFF bytes
METADATA_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")  # Pillow writes icc_profile= and exif= for these
ORIENTATION = 0x0112  # the EXIF tag


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8
    notices: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)


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


def _exif(image: Image.Image) -> bytes | None:
    """EXIF as bare TIFF bytes: the file's raw block (JPEG, PNG, WebP), else only the orientation.

    Only the orientation from parsed tags: a TIFF's tags also describe its own
    strips and samples, which would corrupt another file. (Pillow already
    rotates a TIFF's pixels on load and removes its orientation tag.)
    """
    raw = image.info.get("exif")
    if not raw:
        try:
            orientation = image.getexif().get(ORIENTATION)
        except Exception:  # Pillow's EXIF parser raises many types on damaged blocks; EXIF is optional
            orientation = None
        raw = _orientation_exif(orientation) if isinstance(orientation, int) else None
    if not isinstance(raw, bytes):
        return None
    return raw.removeprefix(EXIF_PREFIX) or None


def _orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


def _metadata(image: Image.Image, notices: list[str]) -> Metadata:
    """ICC profile and EXIF of the input; a non-RGB profile no longer fits the RGB pixels we store."""
    icc = image.info.get("icc_profile") or None
    if icc is not None and icc[16:20] != b"RGB ":
        space = icc[16:20].decode("latin-1").strip() or "unknown"
        notices.append(f"ICC profile for {space} data dropped (the image is stored as RGB)")
        icc = None
    return Metadata(icc_profile=icc, exif=_exif(image))


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
    metadata = _metadata(image, notices)
    pixels = np.asarray(_to_rgb(image, notices), dtype=np.uint8)
    return LoadedImage(np.array(pixels, dtype=np.uint8, copy=True), notices, metadata)


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


def _metadata_options(metadata: Metadata | None, fmt: str, notices: list[str]) -> dict:
    """Pillow save options for the ICC profile and EXIF, where the format can hold them."""
    if not metadata:
        return {}
    if fmt not in METADATA_FORMATS:
        notices.append(f"{fmt} cannot store the ICC profile or EXIF; they are not written")
        return {}
    options = {}
    if metadata.icc_profile:
        options["icc_profile"] = metadata.icc_profile
    if metadata.exif:
        options["exif"] = EXIF_PREFIX + metadata.exif  # each Pillow writer takes or strips this prefix
    return options


def encode_image(pixels: np.ndarray, fmt: str, metadata: Metadata | None = None,
                 notices: list[str] | None = None) -> bytes:
    """RGB uint8 pixels to file bytes in a Pillow format (PNG, TIFF, JPEG at q95, ...).

    Metadata a writer refuses or warns about (EXIF too long for a JPEG marker,
    a damaged EXIF block for TIFF) is left out with a notice rather than
    failing the image or printing a Python warning.
    """
    notices = [] if notices is None else notices
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    extra = _metadata_options(metadata, fmt, notices)
    image = Image.fromarray(pixels, "RGB")
    if extra:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return _save(image, fmt, options | extra)
        except Exception as exc:  # Pillow raises ValueError, OSError, SyntaxError, struct.error ...
            notices.append(f"ICC profile and EXIF not written ({type(exc).__name__}: {exc})")
    return _save(image, fmt, options)


def _save(image: Image.Image, fmt: str, options: dict) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
