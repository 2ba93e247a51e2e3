"""The range coder wrapper: exact round trips, escapes for any integer, typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from informer_codec import coder
from informer_codec.errors import CorruptStreamError


def _tables() -> coder.TableModels:
    counts = np.array([[1, 5, 20, 5, 1, 0], [3, 3, 3, 3, 3, 3]], dtype=np.int32)
    return coder.TableModels(np.array([-2, 0]), np.array([5, 6]), counts)


def test_gaussian_round_trip_including_far_outliers():
    rng = np.random.default_rng(0)
    means = rng.normal(0, 30, 5000)
    scales = rng.uniform(0.11, 100, 5000)
    values = np.round(means + rng.normal(0, 1, 5000) * scales)
    values[:20] = [10**6, -(10**6), 2**20, -(2**20), 1025, -1025, 1024, -1024] + [0] * 12
    encoder = coder.StreamEncoder()
    encoder.encode_gaussian(values, means, scales)
    decoded = coder.StreamDecoder(encoder.finish()).decode_gaussian(means, scales)
    assert np.array_equal(decoded, values.astype(np.int64))


def test_grouped_encoding_writes_what_one_call_per_group_writes():
    """The encoder codes escape-free groups in one call; the decoder still reads group by group."""
    rng = np.random.default_rng(1)
    ends = np.cumsum([7, 30, 1, 12, 50, 9])
    groups = list(zip([0, *ends[:-1]], ends, strict=True))
    means = rng.normal(0, 5, ends[-1])
    scales = rng.uniform(0.11, 20, ends[-1])
    values = np.round(means + rng.normal(0, 1, ends[-1]) * scales)
    values[[10, 40, 99]] = [5000, -3000, 2**21]  # escapes in groups 1, 1 and 5 (the last)
    per_group = coder.StreamEncoder()
    for start, end in groups:
        per_group.encode_gaussian(values[start:end], means[start:end], scales[start:end])
    grouped = coder.StreamEncoder()
    grouped.encode_gaussian(values, means, scales, ends)
    data = grouped.finish()
    assert data == per_group.finish()
    decoder = coder.StreamDecoder(data)
    decoded = [decoder.decode_gaussian(means[start:end], scales[start:end]) for start, end in groups]
    assert np.array_equal(np.concatenate(decoded), values.astype(np.int64))


def test_table_round_trip_with_escapes_at_both_ends():
    tables = _tables()
    symbols = np.array([[-2, -1, 0, 1, 2, -50, 900, 2], [0, 5, 6, 70000, -3, 1, 2, 3]])
    encoder = coder.StreamEncoder()
    encoder.encode_tables(symbols, tables)
    encoder.encode_gaussian(np.array([3.0]), np.array([2.6]), np.array([1.0]))
    decoder = coder.StreamDecoder(encoder.finish())
    assert np.array_equal(decoder.decode_tables(tables, 8), symbols)
    assert decoder.decode_gaussian(np.array([2.6]), np.array([1.0]))[0] == 3


def test_stream_of_odd_length_is_a_corrupt_stream():
    with pytest.raises(CorruptStreamError):
        coder.StreamDecoder(b"abc")


def test_garbage_streams_never_escape_as_foreign_exceptions():
    rng = np.random.default_rng(1)
    means, scales = np.zeros(200), np.full(200, 3.0)
    for _ in range(50):
        data = rng.integers(0, 256, 4 * int(rng.integers(0, 20)), dtype=np.uint8).tobytes()
        try:
            decoder = coder.StreamDecoder(data)
            decoder.decode_gaussian(means, scales)
            decoder.decode_tables(_tables(), 10)
        except CorruptStreamError:
            pass
