"""Fuzz harness for the container parser and the decoder (issue 6).

Every input, however damaged, must end in a decoded image or one of our typed
errors (:class:`~informer_codec.errors.InformerError`), within a time and
memory bound: never another exception type, never a hang, never an escaped
constriction ``PanicException``, never an allocation sized by header fields
that were not checked against the limits first.

The strategies start from real files of both models (made in-process from the
tiny seeded models of ``conftest``) and damage them the ways files get damaged
or crafted: random bytes, bit flips, truncation, chunk lengths, payloads and
header fields. Mutations that keep every CRC valid are the interesting ones:
they get past the container's checks into the range decoder and the models.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import resource
import struct
import time
import zlib
from pathlib import Path

from hypothesis import strategies as st
from PIL import Image, ImageCms

from informer_codec import codec, container, images
from informer_codec.errors import InformerError

LIMITS = container.Limits(max_pixels=1 << 20)
CASE_SECONDS = 20.0  # one decode under the limit takes well under 1 s on one core
HANG_SECONDS = 120.0  # past this the watchdog ends the whole process with tracebacks
MEMORY_GROWTH = 1 << 30  # peak RSS may grow at most this much over the harness's start
PREFIX = container.SIGNATURE + bytes(container.VERSION)
HEAD_AT = len(PREFIX)  # the HEAD chunk's length field
_RSS_START = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
U32 = st.integers(0, 2**32 - 1)


# ----- real files ---------------------------------------------------------------------------------
class RealFiles(tuple):
    """The real files, with a short repr: Hypothesis prints arguments of every failing case."""

    def __repr__(self) -> str:
        return f"<{len(self)} real .inf files>"


def prepare(folder: Path) -> RealFiles:
    """Save the tiny seeded models into ``folder``, point the codec there, encode real files.

    The caller restores ``INFORMER_WEIGHTS_DIR`` and clears the weights cache
    afterwards (the test module does both).
    """
    from conftest import random_image, tiny_model
    from informer_codec import weights

    for name in ("informer", "mbt2018"):
        weights.save_file(tiny_model(name), folder / f"{name}.pt")
    os.environ["INFORMER_WEIGHTS_DIR"] = str(folder)
    weights.load.cache_clear()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    metadata = container.Metadata(icc_profile=icc, exif=exif.tobytes().removeprefix(b"Exif\0\0"))
    files = []
    for name in ("informer", "mbt2018"):
        files.append(codec.encode(random_image(40, 56, seed=1), model=name, quality=50).data)
        files.append(codec.encode(random_image(21, 37, seed=2), model=name, quality=90,
                                  metadata=metadata).data)
    return RealFiles(files)


# ----- chunk surgery ------------------------------------------------------------------------------
def frame(tag: bytes, payload: bytes) -> bytes:
    """One chunk with a valid CRC, so a mutation gets past the container's checks."""
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def split(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a well-formed file, HEAD and IEND included."""
    chunks, pos = [], HEAD_AT
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return PREFIX + b"".join(frame(tag, payload) for tag, payload in chunks)


def _chunk_starts(data: bytes) -> list[int]:
    starts, pos = [], HEAD_AT
    for _, payload in split(data):
        starts.append(pos)
        pos += 12 + len(payload)
    return starts


# ----- strategies ---------------------------------------------------------------------------------
def random_bytes() -> st.SearchStrategy[bytes]:
    """Noise, and noise behind a valid signature and version (which reaches the chunk parser)."""
    noise = st.binary(max_size=600)
    return st.one_of(noise, noise.map(lambda b: PREFIX + b))


def bit_flips(files: list[bytes]) -> st.SearchStrategy[bytes]:
    """One to eight flipped bits anywhere in a real file."""

    def flip(data: bytes) -> st.SearchStrategy[bytes]:
        bits = st.lists(st.integers(0, 8 * len(data) - 1), min_size=1, max_size=8)
        return bits.map(lambda positions: _flip(data, positions))

    return st.sampled_from(files).flatmap(flip)


def _flip(data: bytes, positions: list[int]) -> bytes:
    out = bytearray(data)
    for bit in positions:
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def truncations(files: list[bytes]) -> st.SearchStrategy[bytes]:
    """A real file cut short, or with bytes appended after IEND."""

    def cut(data: bytes) -> st.SearchStrategy[bytes]:
        short = st.integers(0, len(data) - 1).map(lambda n: data[:n])
        return st.one_of(short, st.binary(min_size=1, max_size=16).map(lambda extra: data + extra))

    return st.sampled_from(files).flatmap(cut)


def chunk_lengths(files: list[bytes]) -> st.SearchStrategy[bytes]:
    """A chunk's length field overwritten (near the true length, or any u32), CRCs left alone."""

    def mutate(data: bytes) -> st.SearchStrategy[bytes]:
        starts = _chunk_starts(data)
        near = st.integers(-8, 8)
        return st.tuples(st.sampled_from(starts), st.one_of(near, U32), st.booleans()).map(
            lambda args: _set_length(data, *args)
        )

    return st.sampled_from(files).flatmap(mutate)


def _set_length(data: bytes, at: int, value: int, relative: bool) -> bytes:
    out = bytearray(data)
    (length,) = struct.unpack_from(">I", out, at)
    struct.pack_into(">I", out, at, (length + value if relative else value) % 2**32)
    return bytes(out)


def payloads(files: list[bytes]) -> st.SearchStrategy[bytes]:
    """A chunk's payload cut, extended, overwritten or replaced, then re-framed with a valid CRC."""

    def mutate(data: bytes) -> st.SearchStrategy[bytes]:
        chunks = split(data)
        index = st.integers(1, len(chunks) - 2)  # not HEAD (header_fields does that), not IEND
        edits = st.lists(st.tuples(U32, st.integers(0, 255)), min_size=1, max_size=6)
        how = st.one_of(
            st.tuples(st.just("cut"), U32),
            st.tuples(st.just("extend"), st.binary(min_size=1, max_size=64)),
            st.tuples(st.just("overwrite"), edits),
            st.tuples(st.just("replace"), st.binary(max_size=256)),
        )
        return st.tuples(index, how).map(lambda args: _edit_payload(chunks, *args))

    return st.sampled_from(files).flatmap(mutate)


def _edit_payload(chunks: list[tuple[bytes, bytes]], index: int, how: tuple) -> bytes:
    tag, payload = chunks[index]
    kind, arg = how
    if kind == "cut":
        payload = payload[: arg % (len(payload) + 1)]
    elif kind == "extend":
        payload = payload + arg
    elif kind == "overwrite" and payload:
        edited = bytearray(payload)
        for at, value in arg:
            edited[at % len(edited)] = value
        payload = bytes(edited)
    elif kind == "replace":
        payload = arg
    return join(chunks[:index] + [(tag, payload)] + chunks[index + 1 :])


MODEL_NAMES = st.sampled_from([b"informer", b"mbt2018", b"", b"x" * 255, b"inform\xe9r", b"../x"])
SIZES = st.one_of(
    st.integers(0, 300),
    st.sampled_from([1024, 2048, 4096, 32_767, 32_768, 32_769, 1 << 20, 2**31, 2**32 - 1]),
    U32,
)
TILE_SIZES = st.one_of(st.sampled_from([0, 64, 128, 1024, 32_768, 32_832, 100]), U32)


@st.composite
def header_fields(draw, files: list[bytes]) -> bytes:
    """HEAD fields changed (each with some probability), re-packed raw and re-framed with a valid CRC.

    Sizes under the limit but inconsistent with the coded latent, tile sizes that
    split the image into another number of tiles (or are invalid), NaN and
    out-of-range qualities, unknown colours and models, and name lengths that
    disagree with the payload all reach the reader with a correct CRC.
    """
    chunks = split(draw(st.sampled_from(files)))
    head = chunks[0][1]
    name = head[1 : 1 + head[0]]
    digest, quality, width, height, tile_size, colour = struct.unpack(">32sfIIIB", head[1 + head[0] :])
    if draw(st.booleans()):
        width = draw(SIZES)
    if draw(st.booleans()):
        height = draw(SIZES)
    if draw(st.integers(0, 3)) == 0:
        name = draw(MODEL_NAMES)
    if draw(st.integers(0, 3)) == 0:
        quality = draw(st.floats(width=32))
    if draw(st.integers(0, 5)) == 0:
        digest = _flip(digest, [draw(st.integers(0, 255))])
    if draw(st.integers(0, 5)) == 0:
        colour = draw(st.integers(0, 255))
    if draw(st.integers(0, 3)) == 0:
        tile_size = draw(TILE_SIZES)
    name_length = draw(st.one_of(st.just(len(name)), st.integers(0, 255)))
    fixed = struct.pack(">32sfIIIB", digest, quality, width, height, tile_size, colour)
    return join([(b"HEAD", bytes([name_length]) + name + fixed)] + chunks[1:])


def structures(files: list[bytes]) -> st.SearchStrategy[bytes]:
    """Chunks dropped, duplicated, swapped, or new ones inserted; every CRC valid."""
    tags = st.one_of(
        st.sampled_from([b"HEAD", b"SIDE", b"LATY", b"IEND", b"iCCP", b"eXIF", b"XTRA", b"xtra"]),
        st.binary(min_size=4, max_size=4),
    )
    ops = st.one_of(
        st.tuples(st.just("drop"), U32, st.just(0)),
        st.tuples(st.just("copy"), U32, U32),
        st.tuples(st.just("swap"), U32, U32),
        st.tuples(st.just("insert"), U32, st.tuples(tags, st.binary(max_size=64))),
    )
    return st.tuples(st.sampled_from(files), st.lists(ops, min_size=1, max_size=3)).map(
        lambda args: _restructure(*args)
    )


def _restructure(data: bytes, ops: list[tuple]) -> bytes:
    chunks = split(data)
    for kind, a, b in ops:
        n = len(chunks)
        if kind == "drop" and n:
            del chunks[a % n]
        elif kind == "copy" and n:
            chunks.insert(b % (n + 1), chunks[a % n])
        elif kind == "swap" and n:
            chunks[a % n], chunks[b % n] = chunks[b % n], chunks[a % n]
        elif kind == "insert":
            chunks.insert(a % (n + 1), b)
    return join(chunks)


# ----- the check ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _watchdog(seconds: float):
    """A hard bound for a hang inside native code, which no Python signal handler can interrupt:
    faulthandler's watchdog thread dumps every traceback and ends the process."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _check_image(result: codec.DecodeResult) -> None:
    """A decode that succeeds must give exactly the image its (checked) header describes, and
    ``informer decode`` must be able to write it with whatever metadata the file carried."""
    h = result.header
    assert 0 < h.width * h.height <= LIMITS.max_pixels
    assert result.pixels.shape == (h.height, h.width, 3) and result.pixels.dtype.name == "uint8"
    for fmt in ("PNG", "TIFF"):  # TIFF parses the EXIF; a damaged block must only cost a notice
        assert images.encode_image(result.pixels, fmt, result.metadata)


def _typed(call, data: bytes):
    """``call(data)``, or the name of the InformerError it raised; any other exception fails."""
    try:
        return call(data)
    except InformerError as exc:
        return type(exc).__name__
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # constriction's PanicException derives from BaseException
        raise AssertionError(f"escaped {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc


def check_one(data: bytes) -> str:
    """Decode ``data`` (and describe it, as ``informer info`` does) and assert the outcome.

    Returns "decoded" or the error's class name.
    """
    start = time.monotonic()
    with _watchdog(HANG_SECONDS):
        _typed(codec.describe, data)
        result = _typed(lambda d: codec.decode(d, limits=LIMITS), data)
    elapsed = time.monotonic() - start
    if isinstance(result, codec.DecodeResult):
        _check_image(result)
    assert elapsed < CASE_SECONDS, f"decode took {elapsed:.1f} s"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak - _RSS_START < MEMORY_GROWTH, f"peak memory grew by {(peak - _RSS_START) >> 20} MiB"
    return "decoded" if isinstance(result, codec.DecodeResult) else result
