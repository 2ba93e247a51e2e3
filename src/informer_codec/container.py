"""The ``.inf`` container: signature, version, then CRC-protected chunks (spec: docs/format.md).

Pure Python, no torch: ``informer info`` and every validity check run before
any model is loaded or any pixel buffer is allocated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

from informer_codec.errors import CorruptStreamError, LimitError, UnsupportedError

SIGNATURE = b"\x89INF\r\n\x1a\n"
VERSION = (1, 0)
MAX_CHUNKS = 4096  # two per tile: 1024 tiles of 1024 px cover 32768 x 32768, plus ancillary chunks
DEFAULT_MAX_PIXELS = 268_435_456  # avifdec's default size limit
DEFAULT_MAX_DIMENSION = 32_768  # avifdec's default dimension limit
COLOUR_SRGB = 0
TILE_MULTIPLE = 64  # both models' padding multiple, so every full tile codes without padding
MAX_TILE_SIZE = 32_768

_HEAD_FIXED = struct.Struct(">32sfIIIB")  # digest, quality, width, height, tile size, colour
_CHECKSUM = struct.Struct(">I")  # the latent checksum that starts every LATY payload
METADATA_CHUNKS = {"icc_profile": "iCCP", "exif": "eXIF"}  # Metadata field -> ancillary chunk type


@dataclass
class Header:
    model: str
    weights_digest: bytes
    quality: float
    width: int
    height: int
    tile_size: int = 0  # 0: one tile covering the image
    colour: int = COLOUR_SRGB

    def pack(self) -> bytes:
        name = self.model.encode("ascii")
        if not 0 < len(name) < 256:
            raise ValueError("model name must be 1-255 ASCII characters")
        check_tile_size(self.tile_size, ValueError)
        fixed = _HEAD_FIXED.pack(
            self.weights_digest, self.quality, self.width, self.height, self.tile_size, self.colour
        )
        return bytes([len(name)]) + name + fixed

    def tiles(self) -> list[Tile]:
        return tile_grid(self.width, self.height, self.tile_size)

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
        digest, quality, width, height, tile_size, colour = _HEAD_FIXED.unpack(payload[1 + name_length :])
        if not 0.0 <= quality <= 100.0:  # also refuses NaN, which would decode to a black image
            raise CorruptStreamError(f"quality {quality} in the header is outside 0-100")
        check_tile_size(tile_size, CorruptStreamError)
        return cls(model, digest, quality, width, height, tile_size, colour)


class Tile(NamedTuple):
    """A rectangle of the image, coded as an image of its own."""

    x: int
    y: int
    width: int
    height: int


def check_tile_size(tile_size: int, error: type[Exception]) -> None:
    """0, or a multiple of 64 up to the largest image side: anything else is not a file we write."""
    if tile_size and not (tile_size % TILE_MULTIPLE == 0 and TILE_MULTIPLE <= tile_size <= MAX_TILE_SIZE):
        raise error(f"tile size {tile_size} is not 0 or a multiple of {TILE_MULTIPLE} up to {MAX_TILE_SIZE}")


def tile_count(width: int, height: int, tile_size: int) -> int:
    """Number of tiles, computed without building the grid (a crafted header may ask for many)."""
    if not tile_size:
        return 1
    return -(-width // tile_size) * -(-height // tile_size)


def tile_grid(width: int, height: int, tile_size: int) -> list[Tile]:
    """Tiles in raster order (rows top to bottom, each left to right); edge tiles are smaller."""
    if not tile_size:
        return [Tile(0, 0, width, height)]
    return [
        Tile(x, y, min(tile_size, width - x), min(tile_size, height - y))
        for y in range(0, height, tile_size)
        for x in range(0, width, tile_size)
    ]


def pack_latent(checksum: int, words: bytes) -> bytes:
    """A LATY payload: the tile's latent checksum, then its range-coded words."""
    return _CHECKSUM.pack(checksum) + words


def unpack_latent(payload: bytes) -> tuple[int, bytes]:
    """(checksum, range-coded words) of a LATY payload."""
    if len(payload) < _CHECKSUM.size:
        raise CorruptStreamError("latent chunk is too short to hold its checksum")
    return _CHECKSUM.unpack_from(payload)[0], payload[_CHECKSUM.size :]


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

    def tile_streams(self) -> list[tuple[bytes, bytes]]:
        """(SIDE, LATY) payloads per tile, in raster order, after checking there is one pair per tile.

        Checked before anything is decoded, so a file with missing or extra tiles
        costs no model time.
        """
        coded = [(name, payload) for name, payload in self.chunks if name in ("SIDE", "LATY")]
        h = self.header
        expected = tile_count(h.width, h.height, h.tile_size)
        if len(coded) != 2 * expected:
            raise CorruptStreamError(
                f"file has {len(coded)} SIDE/LATY chunks; its {expected} tile(s) need {2 * expected}"
            )
        if any(name != ("SIDE", "LATY")[i % 2] for i, (name, _) in enumerate(coded)):
            raise CorruptStreamError("SIDE and LATY chunks are not in pairs, SIDE first")
        return [(coded[i][1], coded[i + 1][1]) for i in range(0, len(coded), 2)]

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
