"""The ``.inf`` container: signature, version, then CRC-protected chunks (spec: docs/format.md).

Pure Python, no torch: ``informer info`` and every validity check run before
any model is loaded or any pixel buffer is allocated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from informer_codec.errors import CorruptStreamError, LimitError, UnsupportedError

SIGNATURE = b"\x89INF\r\n\x1a\n"
VERSION = (1, 0)
MAX_CHUNKS = 1024
DEFAULT_MAX_PIXELS = 268_435_456  # avifdec's default size limit
DEFAULT_MAX_DIMENSION = 32_768  # avifdec's default dimension limit
COLOUR_SRGB = 0

_HEAD_FIXED = struct.Struct(">32sfIIBI")  # digest, quality, width, height, colour, latent checksum
METADATA_CHUNKS = {"icc_profile": "iCCP", "exif": "eXIF"}  # Metadata field -> ancillary chunk type


@dataclass
class Header:
    model: str
    weights_digest: bytes
    quality: float
    width: int
    height: int
    checksum: int
    colour: int = COLOUR_SRGB

    def pack(self) -> bytes:
        name = self.model.encode("ascii")
        if not 0 < len(name) < 256:
            raise ValueError("model name must be 1-255 ASCII characters")
        fixed = _HEAD_FIXED.pack(
            self.weights_digest, self.quality, self.width, self.height, self.colour, self.checksum
        )
        return bytes([len(name)]) + name + fixed

    @classmethod
    def unpack(cls, payload: bytes) -> Header:
        if not payload or len(payload) != 1 + payload[0] + _HEAD_FIXED.size:
            raise CorruptStreamError("header chunk has the wrong size")
        name_length = payload[0]
        if name_length == 0:  # pack() refuses it too, and `informer info` re-packs the header
            raise CorruptStreamError("model name in the header is empty")
        try:
            model = payload[1 : 1 + name_length].decode("ascii")
        except UnicodeDecodeError:
            raise CorruptStreamError("model name in the header is not ASCII") from None
        digest, quality, width, height, colour, checksum = _HEAD_FIXED.unpack(payload[1 + name_length :])
        if not 0.0 <= quality <= 100.0:  # also refuses NaN, which would decode to a black image
            raise CorruptStreamError(f"quality {quality} in the header is outside 0-100")
        return cls(model, digest, quality, width, height, checksum, colour)


@dataclass
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_dimension: int = DEFAULT_MAX_DIMENSION

    def check(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise CorruptStreamError(f"image size {width}x{height} is empty")
        if self.max_dimension and max(width, height) > self.max_dimension:
            raise LimitError(
                f"image is {width}x{height}, over the dimension limit of {self.max_dimension} px"
            )
        if self.max_pixels and width * height > self.max_pixels:
            raise LimitError(
                f"image is {width}x{height} = {width * height} pixels, over the limit of "
                f"{self.max_pixels} (raise it with --max-pixels)"
            )


@dataclass
class Metadata:
    """What ancillary chunks carry for the image file: ICC profile, EXIF (TIFF bytes, no prefix).

    Kept as opaque bytes: the codec never interprets them, it only hands them back.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None

    def chunks(self) -> list[tuple[str, bytes]]:
        """The non-empty fields as (type, payload) chunks, in a fixed order."""
        items = ((kind, getattr(self, name)) for name, kind in METADATA_CHUNKS.items())
        return [(kind, payload) for kind, payload in items if payload]

    def __bool__(self) -> bool:
        return bool(self.icc_profile or self.exif)


@dataclass
class Container:
    header: Header
    chunks: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)  # unknown ancillary: type, payload size

    def chunk(self, kind: str) -> bytes:
        for name, payload in self.chunks:
            if name == kind:
                return payload
        raise CorruptStreamError(f"required chunk {kind} is missing")

    def metadata(self) -> Metadata:
        """The first of each metadata chunk present (a repeated ancillary chunk is not an error)."""
        present = {}
        for name, payload in self.chunks:
            present.setdefault(name, payload)
        return Metadata(**{name: present.get(kind) for name, kind in METADATA_CHUNKS.items()})

    def chunk_sizes(self) -> dict[str, int]:
        """Bytes per chunk including its 12 bytes of framing."""
        sizes = {"HEAD": 12 + len(self.header.pack())}
        for name, payload in self.chunks:
            sizes[name] = sizes.get(name, 0) + 12 + len(payload)
        for name, length in self.skipped:
            sizes[name] = sizes.get(name, 0) + 12 + length
        sizes["IEND"] = 12
        return sizes


def _frame(kind: str, payload: bytes) -> bytes:
    tag = kind.encode("ascii")
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def write(container: Container) -> bytes:
    parts = [SIGNATURE, bytes(VERSION), _frame("HEAD", container.header.pack())]
    parts += [_frame(kind, payload) for kind, payload in container.chunks]
    parts.append(_frame("IEND", b""))
    return b"".join(parts)


def _is_critical(kind: str) -> bool:
    return kind[0].isupper()


def _chunks(data: bytes, start: int):
    """Yield (type, payload) after checking each length against the bytes present and its CRC."""
    pos, count = start, 0
    while True:
        if pos + 8 > len(data):
            raise CorruptStreamError("file is truncated (no end chunk)")
        (length,) = struct.unpack_from(">I", data, pos)
        tag = data[pos + 4 : pos + 8]
        if not all(65 <= c <= 90 or 97 <= c <= 122 for c in tag):
            raise CorruptStreamError(f"invalid chunk type at byte {pos + 4}")
        end = pos + 8 + length
        if end + 4 > len(data):
            raise CorruptStreamError(f"chunk {tag.decode()} claims {length} bytes; the file is truncated")
        payload = data[pos + 8 : end]
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(tag + payload) != crc:
            raise CorruptStreamError(f"chunk {tag.decode()} fails its CRC check (file is damaged)")
        yield tag.decode(), payload
        pos, count = end + 4, count + 1
        if tag == b"IEND":
            if length:
                raise CorruptStreamError("the end chunk is not empty")
            if pos != len(data):
                raise CorruptStreamError("unexpected bytes after the end chunk")
            return
        if count > MAX_CHUNKS:
            raise CorruptStreamError("too many chunks")


def read(data: bytes, limits: Limits | None = None, known: tuple[str, ...] = ()) -> Container:
    """Parse and validate a whole file: signature, version, chunk framing, CRCs, size limits.

    ``known`` lists the chunk types the caller can interpret, critical or
    ancillary; they are returned in file order. Any other critical chunk is an
    error; other ancillary chunks are skipped (only their sizes are kept, for
    ``informer info``).
    """
    if len(data) == 0:
        raise CorruptStreamError("file is empty")
    if len(data) < len(SIGNATURE) + 2 or data[: len(SIGNATURE)] != SIGNATURE:
        raise CorruptStreamError("not an informer file (bad signature)")
    major, minor = data[len(SIGNATURE)], data[len(SIGNATURE) + 1]
    if major != VERSION[0]:
        raise UnsupportedError(f"file format version {major}.{minor} needs a newer informer")
    chunks = _chunks(data, len(SIGNATURE) + 2)
    kind, payload = next(chunks)
    if kind != "HEAD":
        raise CorruptStreamError("first chunk is not the header")
    header = Header.unpack(payload)
    (limits or Limits()).check(header.width, header.height)
    parsed = Container(header)
    for kind, payload in chunks:
        if kind in ("HEAD",):
            raise CorruptStreamError("duplicate header chunk")
        if kind == "IEND":
            continue  # the generator then checks that nothing follows
        if _is_critical(kind) and kind not in known:
            raise UnsupportedError(f"file needs chunk type {kind}, which this informer does not know")
        if kind in known:
            parsed.chunks.append((kind, payload))
        else:
            parsed.skipped.append((kind, len(payload)))
    return parsed
