"""`informer bench`: a whole run on tiny images (in-process, no speed section) and the BD deltas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import random_image

SCHEMA = ("psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time")
QUALITIES = (20.0, 80.0)


@pytest.fixture()
def tiny_set(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray(random_image(48, 64, seed=seed)).save(folder / f"img{seed}.png")
    (folder / "README.md").write_text("not an image")
    return folder


def _check_schema(path, points: int) -> dict:
    data = json.loads(path.read_text())
    assert isinstance(data["name"], str) and isinstance(data["description"], str)
    results = data["results"]
    assert set(SCHEMA) <= set(results)
    for key in SCHEMA:
        assert len(results[key]) == points
    assert all(b > 0 for b in results["bpp"])
    assert all(math.isfinite(p) and p > 0 for p in results["psnr-rgb"])
    assert all(t >= 0 for t in results["encoding_time"] + results["decoding_time"])
    assert results["ms-ssim-rgb"] == [None] * points  # 48 px is too small for five-scale MS-SSIM
    return data


def test_bench_on_tiny_images_writes_every_output(tiny_weights, tiny_set, tmp_path):
    from informer_codec import codec
    from informer_codec.bench import baselines
    from informer_codec.bench.run import parse_settings, run_bench

    out = tmp_path / "bench"
    settings = parse_settings(tiny_set, out, qualities="20,80", anchor="jpeg-420", anchors_dir=None,
                              speed=False)
    assert [p.name for p in settings.images] == ["img0.png", "img1.png"]
    run_bench(settings)

    for model in ("informer", "mbt2018"):
        data = _check_schema(out / f"{model}.json", len(QUALITIES))
        assert data["settings"]["quality"] == list(QUALITIES)
        pixels = [np.array(Image.open(p).convert("RGB")) for p in settings.images]
        sizes = [len(codec.encode(px, model=model, quality=QUALITIES[0]).data) for px in pixels]
        assert data["results"]["bpp"][0] == pytest.approx(np.mean(sizes) * 8 / (64 * 48))  # real bytes
    for name in baselines.available():
        _check_schema(out / f"{name}.json", len(baselines.BASELINES[name].params))

    table = (out / "bd_rate.md").read_text()
    assert "against **jpeg-420**" in table and "| informer |" in table and "| webp |" in table
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "speed.md").exists()
    summary = (out / "summary.md").read_text()
    assert "- commit: " in summary and "Skipped (`--no-speed`)" in summary and "rd.png" in summary


def test_bench_with_refinement_names_the_curves_and_compares_them(tiny_weights, tiny_set, tmp_path):
    from informer_codec.bench.run import parse_settings, run_bench

    out = tmp_path / "bench"
    settings = parse_settings(tiny_set, out, models="informer", qualities="20,80", baselines="jpeg-420",
                              anchor="jpeg-420", anchors_dir=None, speed=False, refine=2, limit=1)
    run_bench(settings)
    data = _check_schema(out / "informer-refine2.json", len(QUALITIES))
    assert "latents refined in 2 steps" in data["description"]
    assert not (out / "informer.json").exists()
    assert "| informer-refine2 |" in (out / "bd_rate.md").read_text()


@pytest.mark.parametrize("args", [
    ["--refine", "-3"],
    ["--anchor", "no-such-codec"],
    ["--qualities", "50,101"],
    ["--models", "jpeg"],
    ["--baselines", "gif"],
    ["--models", "none", "--baselines", "none"],
])
def test_bad_options_are_usage_errors_before_any_work(tiny_set, tmp_path, args):
    from informer_codec.cli import main

    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["bench", str(tiny_set), "--out", str(out), "--no-speed", *args])
    assert result.exit_code == 2, result.output
    assert not out.exists()


RATE = [0.12, 0.25, 0.45, 0.8, 1.3]
PSNR = [27.5, 30.0, 32.6, 35.1, 37.8]


@pytest.mark.parametrize("method", ["pchip", "akima", "cubic"])
def test_bd_rate_of_ten_percent_fewer_bits_is_minus_ten(method):
    from informer_codec.bench.bdrate import bd_rate

    order = [3, 0, 4, 2, 1]  # unsorted input is sorted before interpolating
    test_rate, test_psnr = [0.9 * RATE[i] for i in order], [PSNR[i] for i in order]
    assert bd_rate(RATE, PSNR, test_rate, test_psnr, method) == pytest.approx(-10.0, abs=0.1)


def test_bd_psnr_of_a_curve_one_db_higher_is_plus_one():
    from informer_codec.bench.bdrate import bd_psnr, bd_rate

    assert bd_psnr(RATE, PSNR, RATE, [p + 1 for p in PSNR]) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE, [p + 1 for p in PSNR]) < 0


def test_bd_table_reports_values_and_no_overlap():
    from informer_codec.bench.bdrate import table
    from informer_codec.bench.results import Curve

    anchor = Curve("anchor", "", RATE, PSNR, [None] * 5)
    better = Curve("better", "", [0.9 * r for r in RATE], PSNR, [None] * 5, kind="ours")
    apart = Curve("apart", "", [5.0, 6.0], [50.0, 51.0], [None, None], kind="baseline")
    text = table([anchor, better, apart], anchor)
    assert "| better | ours |" in text and "-10.00 %" in text
    assert "| apart | baseline |" in text and "n/a" in text


def test_ms_ssim_is_one_on_identical_images_and_none_on_tiny_ones():
    from informer_codec.bench.metrics import MS_SSIM_MIN_SIDE, ms_ssim_rgb

    big = random_image(MS_SSIM_MIN_SIDE, MS_SSIM_MIN_SIDE + 8, seed=3)
    assert ms_ssim_rgb(big, big) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(big.astype(int) + np.random.default_rng(0).integers(-20, 21, big.shape), 0, 255)
    assert 0 < ms_ssim_rgb(big, noisy.astype(np.uint8)) < 1
    assert ms_ssim_rgb(big[:64], big[:64]) is None


def test_anchor_files_read_in_compressai_schema(tmp_path):
    from informer_codec.bench.results import read_json

    path = tmp_path / "paper-x.json"
    path.write_text(json.dumps({"name": "X", "description": "paper",
                                "results": {"bpp": [0.1, 0.2], "psnr-rgb": [28, 30],
                                            "ms-ssim-db-rgb": [10.0, 20.0]}}))
    curve = read_json(path)
    assert curve.name == "paper-x" and curve.psnr == [28.0, 30.0]
    assert curve.ms_ssim == pytest.approx([0.9, 0.99])
    assert curve.encoding_time == [None, None]


def test_speed_rounds_interleave_the_codecs_and_leave_out_the_warm_up(monkeypatch):
    """Each round times every codec once, in turn; the first round is untimed setup. A fake clock
    (each call advances it by a set amount) makes this a check of the bookkeeping, not of timing."""
    from informer_codec.bench import speed

    clock, calls = [0.0], []
    monkeypatch.setattr(speed.time, "perf_counter", lambda: clock[0])

    def coder(name: str, first: float, later: float):
        def run(kind: str, seconds: float):
            calls.append((name, kind))
            clock[0] += seconds

        def encode():
            run("encode", first if len(calls) < 4 else later)
            return name * len(calls)

        def decode(result):
            run("decode", 2 * (first if len(calls) < 4 else later))

        return speed._Coder(name, "", encode, decode, len)

    timings, results = speed.time_in_rounds([coder("a", 100.0, 1.0), coder("b", 100.0, 3.0)], repeats=3)

    assert calls[:4] == [("a", "encode"), ("a", "decode"), ("b", "encode"), ("b", "decode")]
    assert len(calls) == 4 * 4  # a warm-up round and three timed rounds of two codecs
    assert [(t.name, t.encode_s, t.decode_s) for t in timings] == [("a", 1.0, 2.0), ("b", 3.0, 6.0)]
    assert timings[1].bytes == len(results["b"]) == len(calls) - 1


def test_ceiling_separates_rounding_from_the_transforms_and_crops_the_padding():
    """On the shipped weights at quality 0, rounding costs PSNR that the unrounded latent keeps;
    both are measured on the image itself (an odd size, so padded and cropped back)."""
    from pathlib import Path

    from conftest import SAMPLE
    from informer_codec import weights
    from informer_codec.bench.ceiling import ceiling

    model = weights.load_file(Path(__file__).resolve().parents[1] / "weights" / "mbt2018.pt")
    pixels = np.array(Image.open(SAMPLE).convert("RGB"))[:61, :83]
    coded, unrounded = ceiling(model, pixels, 0.0)
    assert math.isfinite(coded) and math.isfinite(unrounded)
    assert unrounded > coded + 0.5
