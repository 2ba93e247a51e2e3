"""The container parser: every malformed file is refused with our error, before any allocation."""

from __future__ import annotations

import struct

import pytest

from fuzz_harness import frame
from informer_codec import container
from informer_codec.errors import CorruptStreamError, LimitError, UnsupportedError

KNOWN = ("SIDE", "LATY")


def _file(width=64, height=48, chunks=None) -> bytes:
    header = container.Header("informer", bytes(range(32)), 62.5, width, height, tile_size=1024)
    chunks = [("SIDE", b"side-bytes"), ("LATY", b"latent" * 10)] if chunks is None else chunks
    return container.write(container.Container(header, chunks))


def test_round_trip_keeps_header_and_chunks():
    parsed = container.read(_file(), known=KNOWN)
    assert parsed.header.model == "informer"
    assert parsed.header.quality == 62.5
    assert (parsed.header.width, parsed.header.height, parsed.header.tile_size) == (64, 48, 1024)
    assert parsed.chunk("LATY") == b"latent" * 10
    assert sum(parsed.chunk_sizes().values()) + 10 == len(_file())


def test_truncation_at_every_byte_is_an_error():
    data = _file()
    for cut in range(len(data)):
        with pytest.raises(CorruptStreamError):
            container.read(data[:cut], known=KNOWN)


def test_every_flipped_byte_is_detected():
    """Every byte but the minor version, which a reader ignores by design."""
    data = _file()
    for i in range(len(data)):
        if i == 9:
            assert container.read(data[:9] + b"\x07" + data[10:], known=KNOWN)
            continue
        damaged = bytearray(data)
        damaged[i] ^= 0x01
        with pytest.raises((CorruptStreamError, UnsupportedError)):
            container.read(bytes(damaged), known=KNOWN)


def test_bad_signature_future_version_and_empty_file():
    data = _file()
    with pytest.raises(CorruptStreamError, match="signature"):
        container.read(b"\x89PNG" + data[4:], known=KNOWN)
    with pytest.raises(UnsupportedError, match="newer informer"):
        container.read(data[:8] + bytes([2, 0]) + data[10:], known=KNOWN)
    with pytest.raises(CorruptStreamError, match="empty"):
        container.read(b"", known=KNOWN)


def test_huge_dimensions_are_refused_from_the_header():
    with pytest.raises(LimitError, match="limit"):
        container.read(_file(width=60_000, height=60_000), known=KNOWN)
    with pytest.raises(LimitError, match="pixels"):
        container.read(_file(width=20_000, height=20_000), known=KNOWN)
    limits = container.Limits(max_pixels=100)
    with pytest.raises(LimitError):
        container.read(_file(width=11, height=10), limits, known=KNOWN)
    assert container.read(_file(width=20_000, height=20_000), container.Limits(0, 0), known=KNOWN)


def test_chunk_length_beyond_the_file_is_refused():
    data = bytearray(_file())
    head_length = struct.unpack_from(">I", data, 10)[0]
    side_at = 10 + 12 + head_length
    struct.pack_into(">I", data, side_at, 2**31)
    with pytest.raises(CorruptStreamError, match="truncated"):
        container.read(bytes(data), known=KNOWN)


def test_unknown_critical_chunk_is_refused_and_unknown_ancillary_skipped():
    base = _file()
    end = len(base) - 12  # before IEND
    critical = base[:end] + frame(b"XTRA", b"?") + base[end:]
    with pytest.raises(UnsupportedError, match="XTRA"):
        container.read(critical, known=KNOWN)
    ancillary = base[:end] + frame(b"xtra", b"?") + base[end:]
    assert container.read(ancillary, known=KNOWN).chunk("SIDE") == b"side-bytes"


def test_trailing_bytes_and_missing_chunks_are_errors():
    with pytest.raises(CorruptStreamError, match="after the end"):
        container.read(_file() + b"\0", known=KNOWN)
    parsed = container.read(_file(chunks=[("SIDE", b"x")]), known=KNOWN)
    with pytest.raises(CorruptStreamError, match="LATY"):
        parsed.chunk("LATY")


def test_metadata_chunks_are_kept_when_known_and_unknown_ancillary_skipped():
    metadata = container.Metadata(icc_profile=b"icc", exif=b"MM\0*")
    chunks = metadata.chunks() + [("xtra", b"12345"), ("SIDE", b"s"), ("LATY", b"l")]
    data = _file(chunks=chunks)
    parsed = container.read(data, known=KNOWN + ("iCCP", "eXIF"))
    assert parsed.metadata() == metadata
    assert [kind for kind, _ in parsed.chunks] == ["iCCP", "eXIF", "SIDE", "LATY"]
    assert parsed.chunk_sizes()["xtra"] == 12 + 5 and sum(parsed.chunk_sizes().values()) + 10 == len(data)
    assert container.read(data, known=KNOWN).metadata() == container.Metadata()


def test_bad_quality_empty_model_name_and_non_empty_end_chunk_are_refused():
    for quality in (float("nan"), float("inf"), -0.5, 100.01):
        header = container.Header("informer", bytes(32), 50.0, 64, 48)
        payload = bytearray(header.pack())
        struct.pack_into(">f", payload, 1 + len("informer") + 32, quality)
        with pytest.raises(CorruptStreamError, match="quality"):
            container.Header.unpack(bytes(payload))
    fixed = container.Header("x", bytes(32), 50.0, 64, 48).pack()[2:]
    with pytest.raises(CorruptStreamError, match="empty"):  # found by the fuzzer: crashed `info`
        container.Header.unpack(b"\0" + fixed)
    data = _file()
    with pytest.raises(CorruptStreamError, match="end chunk"):
        container.read(data[:-12] + frame(b"IEND", b"x"), known=KNOWN)
