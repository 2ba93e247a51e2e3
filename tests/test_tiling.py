"""Large images are coded in independent tiles, so memory stays bounded (issue 6)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import random_image
from informer_codec import codec, container
from informer_codec.errors import CorruptStreamError


@pytest.mark.parametrize("size, tile", [((2100, 1024), 1024), ((64, 64), 64), ((3840, 2160), 1024),
                                        ((1, 1), 64), ((130, 65), 64), ((500, 300), 0)])
def test_tile_grid_covers_the_image_exactly_once(size, tile):
    width, height = size
    grid = container.tile_grid(width, height, tile)
    covered = np.zeros((height, width), dtype=np.int32)
    for t in grid:
        assert t.width > 0 and t.height > 0 and (not tile or max(t.width, t.height) <= tile)
        covered[t.y : t.y + t.height, t.x : t.x + t.width] += 1
    assert (covered == 1).all()
    assert len(grid) == container.tile_count(width, height, tile)
    assert grid == sorted(grid, key=lambda t: (t.y, t.x))  # raster order


def test_only_images_above_the_threshold_are_tiled():
    assert codec.tile_size_for(768, 512) == 0
    assert codec.tile_size_for(1920, 1080) == 0
    assert codec.tile_size_for(2100, 1024) == 1024


@pytest.mark.parametrize("bad", [1, 63, 100, 1000, 32_832, 2**32 - 64])
def test_invalid_tile_sizes_are_refused(bad):
    fixed = container.Header("informer", bytes(32), 50.0, 64, 48).pack()
    payload = bytearray(fixed)
    payload[-5:-1] = bad.to_bytes(4, "big")  # the tile size, before the colour byte
    with pytest.raises(CorruptStreamError, match="tile size"):
        container.Header.unpack(bytes(payload))
    with pytest.raises(ValueError):
        container.Header("informer", bytes(32), 50.0, 64, 48, tile_size=bad).pack()


def _coded(data: bytes) -> list[tuple[str, bytes]]:
    return [c for c in container.read(data, known=codec.KNOWN_CHUNKS).chunks if c[0] in codec.CODED_CHUNKS]


def test_image_above_the_threshold_round_trips_in_independent_tiles(tiny_weights):
    pixels = random_image(1024, 2100, seed=7)
    data = codec.encode(pixels, quality=60).data
    described = codec.describe(data)
    assert (described["tiles"], described["tile_size"]) == (3, 1024)
    decoded = codec.decode(data)
    assert decoded.pixels.shape == (1024, 2100, 3)
    coded = _coded(data)
    for i, tile in enumerate(decoded.header.tiles()):
        window = np.s_[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width]
        alone = codec.encode(np.ascontiguousarray(pixels[window]), quality=60).data
        assert _coded(alone) == coded[2 * i : 2 * i + 2]  # each tile is coded as an image of its own
        assert np.array_equal(codec.decode(alone).pixels, decoded.pixels[window])


def test_wrong_number_of_tile_chunks_is_corrupt(tiny_weights):
    data = codec.encode(random_image(96, 160, seed=2), model="mbt2018", quality=40, tile_size=64).data
    parsed = container.read(data, known=codec.KNOWN_CHUNKS)
    assert len(parsed.tile_streams()) == 6
    header, chunks = parsed.header, parsed.chunks
    for broken in (chunks[:-2], chunks + chunks[-2:], chunks[1:] + chunks[:1]):
        damaged = container.write(container.Container(header, broken))
        with pytest.raises(CorruptStreamError, match="SIDE"):
            codec.decode(damaged)
    assert codec.decode(data).pixels.shape == (96, 160, 3)
