"""ICC profile and EXIF survive encode/decode (as with avifenc and cjxl); --strip drops them."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image, ImageCms

from conftest import random_image, run_cli
from informer_codec import container, images

ORIENTATION = 0x0112
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


@pytest.fixture()
def tagged_png(tmp_path):
    """A PNG with an sRGB ICC profile and EXIF orientation 6 (rotate 90 degrees clockwise)."""
    path = tmp_path / "tagged.png"
    Image.fromarray(random_image(40, 56, seed=3)).save(path, icc_profile=SRGB, exif=_exif())
    return path


def test_metadata_round_trips_and_strip_drops_it(tiny_weights, tagged_png, tmp_path):
    kept, stripped, out = tmp_path / "kept.inf", tmp_path / "stripped.inf", tmp_path / "out"
    out.mkdir()
    for args in ((tagged_png, kept), (tagged_png, stripped, "--strip")):
        result = run_cli("encode", *args, "--quiet")
        assert result.returncode == 0, result.stderr.decode()
    info = run_cli("info", kept, stripped, "--json")
    chunks = [set(json.loads(line)["chunks"]) for line in info.stdout.decode().splitlines()]
    assert chunks == [{"HEAD", "iCCP", "eXIF", "SIDE", "LATY", "IEND"}, {"HEAD", "SIDE", "LATY", "IEND"}]
    result = run_cli("decode", kept, stripped, "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    with Image.open(out / "kept.png") as im:
        assert im.info.get("icc_profile") == SRGB
        assert im.getexif().get(ORIENTATION) == 6
        assert im.size == (56, 40)  # stored unrotated; viewers apply the orientation
    with Image.open(out / "stripped.png") as im:
        assert "icc_profile" not in im.info and ORIENTATION not in im.getexif()


def test_load_reads_metadata_from_jpeg_and_drops_a_non_rgb_profile():
    buffer = io.BytesIO()
    Image.fromarray(random_image(16, 16)).save(buffer, "JPEG", icc_profile=SRGB, exif=_exif(3))
    metadata = images.load(buffer.getvalue(), 0).metadata
    assert metadata.icc_profile == SRGB
    assert metadata.exif[:4] in (b"II*\0", b"MM\0*")  # bare TIFF bytes, the Exif prefix removed
    other = io.BytesIO()
    lab_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.new("L", (8, 8)).save(other, "PNG", icc_profile=lab_profile)
    loaded = images.load(other.getvalue(), 0)
    assert loaded.metadata.icc_profile is None and any("ICC" in n for n in loaded.notices)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_encode_image_writes_metadata(fmt):
    exif = _exif(8).tobytes()[len(images.EXIF_PREFIX) :]
    data = images.encode_image(random_image(8, 8), fmt, container.Metadata(SRGB, exif))
    with Image.open(io.BytesIO(data)) as im:
        assert im.info.get("icc_profile") == SRGB and im.getexif().get(ORIENTATION) == 8


def test_formats_without_metadata_and_damaged_exif_give_notices():
    notices: list[str] = []
    images.encode_image(random_image(8, 8), "BMP", container.Metadata(SRGB, b"II*\0"), notices)
    assert notices and "BMP" in notices[0]
    notices = []
    data = images.encode_image(random_image(8, 8), "JPEG", container.Metadata(exif=b"x" * 70_000), notices)
    assert data[:2] == b"\xff\xd8" and notices and "not written" in notices[0]


def test_tiff_orientation_is_applied_once():
    """Pillow rotates a TIFF on load and drops the tag: carrying it too would rotate twice."""
    buffer = io.BytesIO()
    Image.fromarray(random_image(8, 12)).save(buffer, "TIFF", exif=_exif(5))
    loaded = images.load(buffer.getvalue(), 0)
    assert loaded.pixels.shape == (12, 8, 3) and loaded.metadata.exif is None
