"""The real CLI in a subprocess: what a user does, and every bad input."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE, random_image, run_cli


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(random_image(75, 101, seed=5)).save(path)
    return path


@pytest.fixture()
def encoded(tiny_weights, photo, tmp_path):
    out = tmp_path / "photo.inf"
    result = run_cli("encode", photo, out, "-q", "55", "--model", "mbt2018")
    assert result.returncode == 0, result.stderr.decode()
    return out


def test_encode_info_decode_both_models(tiny_weights, photo, tmp_path):
    for model in ("informer", "mbt2018"):
        inf, png = tmp_path / f"{model}.inf", tmp_path / f"{model}.png"
        result = run_cli("encode", photo, inf, "--model", model, "-q", "33.3")
        assert result.returncode == 0, result.stderr.decode()
        assert "bpp" in result.stderr.decode()
        info = run_cli("info", inf, "--json")
        described = json.loads(info.stdout)
        assert described["model"] == model and (described["width"], described["height"]) == (101, 75)
        assert described["bytes"] == inf.stat().st_size
        assert set(described["chunks"]) == {"HEAD", "SIDE", "LATY", "IEND"}
        assert run_cli("decode", inf, png).returncode == 0
        with Image.open(png) as im:
            assert im.size == (101, 75) and im.mode == "RGB"


def test_pipes_with_dash(tiny_weights, photo):
    encoded = run_cli("encode", "-", "-", "--quiet", stdin=photo.read_bytes())
    assert encoded.returncode == 0, encoded.stderr.decode()
    assert encoded.stdout[:4] == b"\x89INF" and encoded.stderr == b""
    decoded = run_cli("decode", "-", "-", "--quiet", stdin=encoded.stdout)
    assert decoded.returncode == 0, decoded.stderr.decode()
    assert decoded.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_files_with_out_dir_and_json(tiny_weights, photo, tmp_path):
    second = tmp_path / "second.png"
    shutil.copy(SAMPLE, second)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("encode", photo, second, "-o", out, "--json", "-q", "10")
    assert result.returncode == 0, result.stderr.decode()
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [line["output"] for line in lines] == [str(out / "photo.inf"), str(out / "second.inf")]
    assert lines[1]["width"] == 480 and lines[1]["bpp"] > 0
    decoded = run_cli("decode", out / "photo.inf", out / "second.inf", "-o", out)
    assert decoded.returncode == 0
    assert (out / "photo.png").is_file() and (out / "second.png").is_file()


def test_decode_to_other_formats_by_extension(encoded, tmp_path):
    assert run_cli("decode", encoded, tmp_path / "x.tif").returncode == 0
    with Image.open(tmp_path / "x.tif") as im:
        assert im.size == (101, 75) and im.format == "TIFF"
    _expect_failure(run_cli("decode", encoded, tmp_path / "x.nope"), "cannot write images")


def test_grayscale_palette_and_16_bit_inputs_convert_with_a_notice(tiny_weights, tmp_path):
    gray = (random_image(40, 40)[:, :, 0]).astype(np.uint16) * 257
    inputs = {
        "gray.png": Image.fromarray(random_image(40, 40)[:, :, 0]),
        "palette.png": Image.fromarray(random_image(40, 40)).convert("P"),
        "deep.png": Image.fromarray(gray),
        "opaque.png": Image.fromarray(random_image(40, 40)).convert("RGBA"),
    }
    for name, image in inputs.items():
        image.save(tmp_path / name)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("encode", *(tmp_path / name for name in inputs), "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    notes = [line for line in result.stderr.decode().splitlines() if "note:" in line]
    assert all(any(name in note for note in notes) for name in inputs), notes
    assert len(list(out.glob("*.inf"))) == 4


def _expect_failure(result, fragment: str, code: int = 1):
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert fragment in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
    ],
)
def test_bad_encode_inputs(tiny_weights, tmp_path, content, fragment):
    source = tmp_path / "in.png"
    if content is not None:
        source.write_bytes(content)
    out = tmp_path / "out.inf"
    _expect_failure(run_cli("encode", source, out), fragment)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_transparent_image_is_refused(tiny_weights, tmp_path):
    rgba = np.dstack([random_image(20, 20), np.full((20, 20), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    _expect_failure(run_cli("encode", tmp_path / "alpha.png", tmp_path / "o.inf"), "transparency")
    assert not (tmp_path / "o.inf").exists()


def _mutations(data: bytes) -> dict[str, tuple[bytes, str]]:
    name_length = data[18]
    width_at = 10 + 8 + 1 + name_length + 32 + 4
    huge = bytearray(data)
    struct.pack_into(">II", huge, width_at, 100_000, 100_000)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x04
    unknown = bytearray(data)
    unknown[19:26] = b"mbt9999"
    return {
        "empty": (b"", "empty"),
        "truncated": (data[: len(data) // 2], "truncated"),
        "flipped": (bytes(flipped), "CRC"),
        "magic": (b"GIF89a" + data[6:], "signature"),
        "future": (data[:8] + b"\x09\x00" + data[10:], "newer informer"),
        "unknown-model": (bytes(unknown), "CRC"),
        "huge": (bytes(huge), "CRC"),
    }


def test_bad_decode_inputs(encoded, tmp_path):
    for name, (content, fragment) in _mutations(encoded.read_bytes()).items():
        source, out = tmp_path / f"{name}.inf", tmp_path / f"{name}.png"
        source.write_bytes(content)
        _expect_failure(run_cli("decode", source, out), fragment)
        assert not out.exists(), name
    _expect_failure(run_cli("decode", tmp_path / "missing.inf", tmp_path / "m.png"), "no such file")


def _recrc(data: bytearray) -> bytes:
    """Fix the header chunk's CRC after editing it, to reach the checks behind the CRC."""
    import zlib

    length = struct.unpack_from(">I", data, 10)[0]
    crc = zlib.crc32(bytes(data[14 : 18 + length]))
    struct.pack_into(">I", data, 18 + length, crc)
    return bytes(data)


def test_unknown_model_and_huge_dimensions_behind_a_valid_crc(encoded, tmp_path):
    data = bytearray(encoded.read_bytes())
    unknown = bytearray(data)
    unknown[19:26] = b"mbt9999"
    huge = bytearray(data)
    width_at = 10 + 8 + 1 + data[18] + 32 + 4
    struct.pack_into(">II", huge, width_at, 30_000, 30_000)
    for name, content, fragment in [
        ("unknown", _recrc(unknown), "unknown model 'mbt9999'"),
        ("huge", _recrc(huge), "over the limit"),
    ]:
        (tmp_path / name).write_bytes(content)
        _expect_failure(run_cli("decode", tmp_path / name, tmp_path / f"{name}.png"), fragment)
        assert not (tmp_path / f"{name}.png").exists()


def test_usage_errors_exit_2(tiny_weights, photo, tmp_path):
    assert run_cli("encode", photo).returncode == 2
    assert run_cli("encode", photo, tmp_path / "x.inf", "-q", "150").returncode == 2
    assert run_cli("encode", photo, tmp_path / "x.inf", "--model", "jpeg").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_output_never_overwrites_the_input(tiny_weights, photo):
    before = photo.read_bytes()
    _expect_failure(run_cli("encode", photo, photo), "overwrite the input")
    assert photo.read_bytes() == before
