"""Fuzzing the container parser and the decoder (harness: tests/fuzz_harness.py).

A short, derandomised run here (about 300 cases); ``make fuzz`` runs the same
tests with ``FUZZ_EXAMPLES=10000`` cases in all, freshly random each time.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fuzz_harness as fh
from informer_codec import weights

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))  # 0: the short run
SHORT_TOTAL = 300


def fuzz_settings(short: int):
    """``short`` cases in the test suite; the same share of FUZZ_EXAMPLES in a long run."""
    long_run = FUZZ_EXAMPLES > 0
    return settings(
        max_examples=-(-FUZZ_EXAMPLES * short // SHORT_TOTAL) if long_run else short,  # rounded up
        deadline=None,  # the harness bounds each case itself; shared CPUs make timings jittery
        derandomize=not long_run,  # the suite is reproducible; `make fuzz` explores
        database=None if not long_run else settings.default.database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def real_files(tmp_path_factory) -> fh.RealFiles:
    """Real files of both models, from the tiny seeded weights; the environment is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFORMER_WEIGHTS_DIR", "")  # restored on exit, whatever prepare() sets
        files = fh.prepare(tmp_path_factory.mktemp("fuzz-weights"))
        yield files
    weights.load.cache_clear()


def _run(data: bytes) -> None:
    event(fh.check_one(data))


def test_real_files_decode(real_files):
    assert [fh.check_one(data) for data in real_files] == ["decoded"] * len(real_files)


def test_truncation_at_every_byte(real_files):
    for data in real_files:
        for cut in range(len(data)):
            assert fh.check_one(data[:cut]) != "decoded"


def _with_head(data: bytes, **fields) -> bytes:
    """A real file with some HEAD fields replaced and a valid CRC."""
    chunks = fh.split(data)
    head = chunks[0][1]
    name_end = 1 + head[0]
    names = ("digest", "quality", "width", "height", "tile_size", "colour")
    values = dict(zip(names, struct.unpack(">32sfIIIB", head[name_end:]), strict=True)) | fields
    head = head[:name_end] + struct.pack(">32sfIIIB", *(values[n] for n in names))
    return fh.join([(b"HEAD", head)] + chunks[1:])


@pytest.mark.parametrize("size", [(1024, 1024), (32_768, 32), (32, 32_768), (300, 17)])
def test_sizes_inconsistent_with_the_latent_are_corrupt(real_files, size):
    """Valid under the limit, CRC correct, but not the size the streams were coded for."""
    for data in real_files:
        assert fh.check_one(_with_head(data, width=size[0], height=size[1])) == "CorruptStreamError"


def test_bad_quality_and_colour_are_refused(real_files):
    data = real_files[0]
    for quality in (float("nan"), float("inf"), -1.0, 100.5):
        assert fh.check_one(_with_head(data, quality=quality)) == "CorruptStreamError"
    assert fh.check_one(_with_head(data, colour=1)) == "UnsupportedError"
    assert fh.check_one(_with_head(data, width=2**20, height=2)) == "LimitError"


@fuzz_settings(40)
@given(data=fh.random_bytes())
def test_random_bytes(real_files, data):
    _run(data)


@fuzz_settings(40)
@given(st.data())
def test_bit_flips(real_files, data):
    _run(data.draw(fh.bit_flips(real_files)))


@fuzz_settings(20)
@given(st.data())
def test_truncations(real_files, data):
    _run(data.draw(fh.truncations(real_files)))


@fuzz_settings(30)
@given(st.data())
def test_chunk_lengths(real_files, data):
    _run(data.draw(fh.chunk_lengths(real_files)))


@fuzz_settings(60)
@given(st.data())
def test_payloads_with_valid_crc(real_files, data):
    _run(data.draw(fh.payloads(real_files)))


@fuzz_settings(70)
@given(st.data())
def test_header_fields_with_valid_crc(real_files, data):
    _run(data.draw(fh.header_fields(real_files)))


@fuzz_settings(40)
@given(st.data())
def test_chunk_structure(real_files, data):
    _run(data.draw(fh.structures(real_files)))
