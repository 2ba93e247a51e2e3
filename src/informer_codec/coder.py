"""Range coding with constriction: the only module that imports it.

Two kinds of models:

* **tables** (side information): per-channel integer counts frozen at export
  (:mod:`informer_codec.models.tables`), one ``Categorical`` per channel;
* **Gaussian** (the latent y): each symbol is coded as ``value - round(mean)``
  with a ``QuantizedGaussian`` of mean ``mean - round(mean)`` and its own
  scale. Means and scales come from the exact integer path, so both sides
  hand constriction identical floats.

Both alphabets are finite. Their first and last symbols are escapes meaning
"this far or further"; the excess follows as an Elias-gamma code of uniform
symbols, so any integer can be coded and no image can make encoding fail.
The queue (range) coder decodes in the order symbols were encoded.
"""

from __future__ import annotations

import constriction
import numpy as np

from informer_codec.errors import CorruptStreamError

GAUSSIAN_RADIUS = 1024
_GAUSSIAN = constriction.stream.model.QuantizedGaussian(-GAUSSIAN_RADIUS, GAUSSIAN_RADIUS)
_UNIFORM = constriction.stream.model.Uniform()
_MAX_EXCESS_BITS = 31
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)


def _corrupt(exc: BaseException) -> CorruptStreamError:
    """constriction raises AssertionError, KeyError, ValueError or a Rust PanicException."""
    if isinstance(exc, _PASS_THROUGH):
        raise exc
    return CorruptStreamError(f"entropy-coded stream is invalid ({type(exc).__name__})")


class TableModels:
    """One constriction ``Categorical`` per channel of a frozen table set, built once."""

    def __init__(self, lo: np.ndarray, length: np.ndarray, counts: np.ndarray) -> None:
        self.lo = lo.astype(np.int64)
        self.top = length.astype(np.int64) - 1
        self.models = [
            constriction.stream.model.Categorical(
                counts[c, : length[c]].astype(np.float64) / float(counts[c].sum()), perfect=False
            )
            for c in range(len(lo))
        ]


def _clip(symbols: np.ndarray, top: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Clip to [0, top]; return the clipped symbols and the excess beyond either end."""
    clipped = np.clip(symbols, 0, top)
    excess = np.abs(symbols - clipped)
    return clipped.astype(np.int32), excess


def _escapes(clipped: np.ndarray, top: np.ndarray | int) -> np.ndarray:
    """Which clipped symbols are escapes: the alphabet's first or last, followed by an excess."""
    return (clipped == 0) | (clipped == top)


def _segment_ends(escaped: np.ndarray, count: int, group_ends: np.ndarray | None) -> list[int]:
    """Ends of the groups that hold an escape, then ``count``: where coding must stop for escapes."""
    if group_ends is None or not escaped.any():
        return [count]
    holding = np.unique(np.searchsorted(group_ends, np.flatnonzero(escaped), side="right"))
    ends = [int(group_ends[g]) for g in holding]
    return ends if ends[-1] == count else [*ends, count]


class StreamEncoder:
    """Appends symbols to one range-coded stream."""

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()

    def encode_tables(self, symbols: np.ndarray, tables: TableModels) -> None:
        """symbols (C, n): row c coded with table c."""
        for c, model in enumerate(tables.models):
            clipped, excess = _clip(symbols[c].astype(np.int64) - tables.lo[c], tables.top[c])
            self._coder.encode(clipped, model)
            self._encode_excess(excess[_escapes(clipped, tables.top[c])])

    def encode_gaussian(self, values: np.ndarray, means: np.ndarray, scales: np.ndarray,
                        group_ends: np.ndarray | None = None) -> None:
        """Integer-valued ``values`` (float or int arrays) with per-symbol Gaussian models.

        ``group_ends``: where the groups the decoder reads one call at a time end
        (the wavefronts); the escapes of a group follow it. A queue coder's output
        does not depend on how symbols are split into calls, so groups without
        escapes are coded together, and the stream is what one call per group writes.
        """
        offsets = np.round(means)
        symbols = values.astype(np.int64) - offsets.astype(np.int64) + GAUSSIAN_RADIUS
        clipped, excess = _clip(symbols, 2 * GAUSSIAN_RADIUS)
        escaped = _escapes(clipped, 2 * GAUSSIAN_RADIUS)
        fractions = means - offsets
        start = 0
        for end in _segment_ends(escaped, len(symbols), group_ends):
            self._coder.encode(clipped[start:end] - GAUSSIAN_RADIUS, _GAUSSIAN, fractions[start:end],
                               scales[start:end])
            self._encode_excess(excess[start:end][escaped[start:end]])
            start = end

    def _encode_excess(self, excess: np.ndarray) -> None:
        """Elias-gamma: the bit length of excess+1, then its low bits in 16-bit pieces."""
        if excess.size == 0:
            return
        value = excess.astype(np.int64) + 1
        bits = (np.frexp(value.astype(np.float64))[1] - 1).astype(np.int32)
        self._coder.encode(bits, _UNIFORM, np.full(bits.shape, _MAX_EXCESS_BITS + 1, np.int32))
        for shift in range(0, _MAX_EXCESS_BITS, 16):
            sizes = np.left_shift(1, np.clip(bits - shift, 0, 16)).astype(np.int32)
            pieces = (value >> shift) & (sizes - 1)
            has_piece = bits > shift
            if has_piece.any():
                self._coder.encode(pieces[has_piece].astype(np.int32), _UNIFORM, sizes[has_piece])

    def finish(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class StreamDecoder:
    """Reads symbols back, in the order they were encoded; any failure is a CorruptStreamError."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise CorruptStreamError("entropy-coded stream has a length that is not a multiple of 4")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = constriction.stream.queue.RangeDecoder(words)
        except BaseException as exc:
            raise _corrupt(exc) from None

    def _decode(self, *args) -> np.ndarray:
        try:
            return np.asarray(self._coder.decode(*args))
        except BaseException as exc:
            raise _corrupt(exc) from None

    def decode_tables(self, tables: TableModels, count: int) -> np.ndarray:
        """(C, count) symbols, row c decoded with table c."""
        rows = []
        for c, model in enumerate(tables.models):
            clipped = self._decode(model, count).astype(np.int64)
            rows.append(self._apply_excess(clipped, int(tables.top[c])) + tables.lo[c])
        return np.stack(rows)

    def decode_gaussian(self, means: np.ndarray, scales: np.ndarray) -> np.ndarray:
        offsets = np.round(means)
        clipped = self._decode(_GAUSSIAN, means - offsets, scales).astype(np.int64) + GAUSSIAN_RADIUS
        symbols = self._apply_excess(clipped, 2 * GAUSSIAN_RADIUS)
        return symbols - GAUSSIAN_RADIUS + offsets.astype(np.int64)

    def _apply_excess(self, clipped: np.ndarray, top: int) -> np.ndarray:
        at_end = np.flatnonzero(_escapes(clipped, top))
        if at_end.size == 0:
            return clipped
        excess = self._decode_excess(at_end.size)
        sign = np.where(clipped[at_end] == 0, -1, 1)
        clipped[at_end] += sign * excess
        return clipped

    def _decode_excess(self, count: int) -> np.ndarray:
        bits = self._decode(_UNIFORM, np.full(count, _MAX_EXCESS_BITS + 1, np.int32)).astype(np.int64)
        value = np.left_shift(1, bits)
        for shift in range(0, _MAX_EXCESS_BITS, 16):
            has_piece = bits > shift
            if has_piece.any():
                sizes = np.left_shift(1, np.clip(bits[has_piece] - shift, 0, 16)).astype(np.int32)
                value[has_piece] |= self._decode(_UNIFORM, sizes).astype(np.int64) << shift
        return value - 1
