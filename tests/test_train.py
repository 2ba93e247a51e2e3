"""`informer train`: resumes exactly after a kill, and its export codes images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import random_image, run_cli


def _settings(tmp_path: Path, **changes):
    from informer_codec.train.loop import TrainSettings

    folder = tmp_path / "photos"
    if not folder.exists():
        folder.mkdir()
        for i in range(4):
            Image.fromarray(random_image(72, 96, seed=i)).save(folder / f"p{i}.png")
    base = dict(dataset=folder, model="mbt2018", out=tmp_path / "run", steps=3, patch=64, batch=2,
                n=16, m=32, warmup=2, checkpoint_minutes=0.0, validate_every=2, validation_patch=64,
                threads=1)
    return TrainSettings(**(base | changes))


def test_resume_continues_exactly_where_the_checkpoint_stopped(tmp_path):
    from informer_codec.train.loop import Trainer

    Trainer(_settings(tmp_path)).run()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "val step 2" in log
    continued = [Trainer(_settings(tmp_path, steps=5, resume=True)).train_step() for _ in range(2)]
    assert continued[0]["loss"] == continued[1]["loss"]
    assert np.isfinite(continued[0]["loss"])


def test_export_gives_a_weights_file_that_codes(tmp_path):
    from informer_codec.train.loop import Trainer, export
    from informer_codec.weights import load_file

    Trainer(_settings(tmp_path, model="informer", steps=1)).run()
    export(tmp_path / "run" / "checkpoint.pt", tmp_path / "informer.pt")
    model = load_file(tmp_path / "informer.pt")
    x = torch.from_numpy(random_image(32, 48)).permute(2, 0, 1)[None].float() / 255
    latents = model.compress(x, 50.0)
    assert torch.equal(model.decompress(latents, 50.0), model.synthesize(latents.y_hat, 50.0))
    # ... and a new run starts from it, into a folder that does not exist yet (a GPU round's case).
    fresh = Trainer(_settings(tmp_path, model="informer", out=tmp_path / "new" / "run",
                              init_from=tmp_path / "informer.pt"))
    assert torch.equal(fresh.model.g_s[0].weight.detach(), model.g_s[0].weight.detach())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line_and_a_usage_error(tmp_path):
    folder = _settings(tmp_path).dataset
    result = run_cli("train", "--dataset", folder, "--out", tmp_path / "run", "--device", "cuda")
    assert result.returncode == 2
    assert b"no CUDA GPU" in result.stderr
    assert b"Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_patch_that_the_model_cannot_tile_is_a_usage_error(tmp_path):
    folder = _settings(tmp_path).dataset
    result = run_cli("train", "--dataset", folder, "--out", tmp_path / "run", "--model", "mbt2018",
                     "--patch", "48", "--device", "cpu")
    assert result.returncode == 2
    assert b"--patch must be a multiple of 64" in result.stderr
    assert b"Traceback" not in result.stderr


def test_photos_too_small_for_validation_crops_are_a_usage_error(tmp_path):
    folder = _settings(tmp_path).dataset  # 72x96 photos: crops of 64 fit, validation crops of 256 do not
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", folder, "--out", out, "--patch", "64", "--device", "cpu")
    assert result.returncode == 2
    assert b"no held-out photo" in result.stderr
    assert b"Traceback" not in result.stderr


def test_training_runs_on_an_explicit_cpu_device(tmp_path):
    from informer_codec.train.loop import Trainer

    trainer = Trainer(_settings(tmp_path, device="cpu", steps=1))
    assert trainer.device.type == "cpu"
    assert trainer.sampler.images[0].device.type == "cpu"
    trainer.run()
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_gpu_pack_writes_one_crop_per_large_enough_photo_and_compressai_sources(tmp_path):
    from informer_codec.train.pack import pack_compressai_sources, pack_crops

    folder = _settings(tmp_path).dataset  # four 72x96 photos
    Image.fromarray(random_image(40, 40, seed=9)).save(folder / "small.png")  # below the crop size
    total = pack_crops(folder, tmp_path / "pack" / "train", size=64, quality=90)
    crops = sorted((tmp_path / "pack" / "train").glob("*.jpg"))
    assert [c.stem for c in crops] == ["p0", "p1", "p2", "p3"]
    assert total == sum(c.stat().st_size for c in crops)
    assert all(Image.open(c).size == (64, 64) for c in crops)
    assert pack_compressai_sources(tmp_path / "pack") > 0
    assert (tmp_path / "pack" / "compressai" / "entropy_models" / "entropy_models.py").is_file()
    assert not list((tmp_path / "pack" / "compressai").rglob("*.so"))


def test_weight_average_survives_a_kill_and_resume_and_is_what_export_ships(tmp_path):
    from informer_codec.train.loop import Trainer, export
    from informer_codec.weights import load_file

    Trainer(_settings(tmp_path, out=tmp_path / "straight", steps=4)).run()
    Trainer(_settings(tmp_path, out=tmp_path / "killed", steps=2)).run()
    Trainer(_settings(tmp_path, out=tmp_path / "killed", steps=4, resume=True)).run()
    straight, resumed = (
        torch.load(tmp_path / run / "checkpoint.pt", weights_only=False) for run in ("straight", "killed")
    )
    name = "g_s.0.weight"
    # Resuming reproduces training to rounding (live weights differ by ~4e-9 here); an average that
    # restarted from the resumed weights would be off by about one Adam step (~1e-4).
    average = straight["average"]["state"][name]
    assert torch.allclose(average, resumed["average"]["state"][name], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(average, straight["model"][name], rtol=1e-5, atol=1e-7)
    assert "val-avg step 4" in (tmp_path / "killed" / "train.log").read_text()

    export(tmp_path / "straight" / "checkpoint.pt", tmp_path / "average.pt")
    export(tmp_path / "straight" / "checkpoint.pt", tmp_path / "live.pt", live=True)
    for weights, source in (("average.pt", straight["average"]["state"]), ("live.pt", straight["model"])):
        shipped = load_file(tmp_path / weights).g_s[0].weight.detach()
        assert torch.equal(shipped, source[name].half().float())


def test_fine_tuning_on_the_rounded_latents_reaches_the_model_and_the_log(tmp_path, monkeypatch):
    from informer_codec.train.loop import Trainer

    trainer = Trainer(_settings(tmp_path, quantizer="round", steps=2))
    model_class, seen = type(trainer.model), []
    forward = model_class.forward

    def recording_forward(self, x, quality, quantizer=None):
        seen.append((self.training, quantizer))
        return forward(self, x, quality, quantizer)

    monkeypatch.setattr(model_class, "forward", recording_forward)
    metrics = trainer.train_step()
    assert seen == [(True, "round")]
    assert np.isfinite(metrics["loss"]) and metrics["bpp"] > 0
    trainer.run()
    assert "'quantizer': 'round'" in (tmp_path / "run" / "train.log").read_text()


def test_unknown_quantizer_is_a_usage_error(tmp_path):
    folder = _settings(tmp_path).dataset
    result = run_cli("train", "--dataset", folder, "--out", tmp_path / "run", "--quantizer", "floor")
    assert result.returncode == 2
    assert b"'floor' is not one of 'noise', 'round'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_weights_with_fewer_quality_levels_start_the_new_levels_on_their_log_lambda_line(tmp_path):
    """Sessions 10 and 11 added levels below 0.0018: a run from older weights keeps the trained
    gains and extrapolates the new ones (log-gain linear in log-lambda), not an untrained guess."""
    from informer_codec.models import ModelConfig, build_model
    from informer_codec.models.base import DEFAULT_LAMBDAS
    from informer_codec.train.loop import Trainer
    from informer_codec.weights import save_file

    old_lambdas = DEFAULT_LAMBDAS[2:]
    old = build_model(ModelConfig(name="mbt2018", n=16, m=32, lambdas=old_lambdas))
    slope = torch.linspace(0.3, 0.7, 32)  # per channel: gain = lambda ** slope
    with torch.no_grad():
        old.gain.gain.copy_(torch.tensor(old_lambdas)[:, None] ** slope)
        old.gain.inverse_gain.copy_(1 / old.gain.gain)
    save_file(old, tmp_path / "old.pt")
    new = Trainer(_settings(tmp_path, init_from=tmp_path / "old.pt")).model

    expected = torch.tensor(DEFAULT_LAMBDAS)[:, None] ** slope
    assert new.gain.gain.shape == (len(DEFAULT_LAMBDAS), 32)
    # the file stores fp16 (relative error up to 2**-11), and extrapolating 2.5 level spacings
    # below the lowest trained level multiplies that error by about 6
    torch.testing.assert_close(new.gain.gain.detach(), expected, rtol=5e-3, atol=1e-5)
    torch.testing.assert_close(new.gain.inverse_gain.detach(), 1 / expected, rtol=5e-3, atol=1e-5)
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"quality levels {old_lambdas} -> {DEFAULT_LAMBDAS}" in log


def test_resume_keeps_the_quality_levels_of_its_checkpoint(tmp_path):
    """A run checkpointed before the levels changed resumes with its own levels, not today's."""
    from informer_codec.models.base import DEFAULT_LAMBDAS
    from informer_codec.train.loop import CHECKPOINT, Trainer

    trainer = Trainer(_settings(tmp_path, steps=1))
    trainer.model.config.lambdas = DEFAULT_LAMBDAS[2:]  # as if saved by an older version ...
    trainer.model.gain.gain.data = trainer.model.gain.gain.data[2:]  # ... with fewer gain rows
    trainer.model.gain.inverse_gain.data = trainer.model.gain.inverse_gain.data[2:]
    for key in ("gain.gain", "gain.inverse_gain"):
        trainer.average.state[key] = trainer.average.state[key][2:]
    trainer._save_checkpoint()
    resumed = Trainer(_settings(tmp_path, steps=2, resume=True))
    assert resumed.model.config.lambdas == DEFAULT_LAMBDAS[2:]
    assert resumed.model.gain.gain.shape[0] == len(DEFAULT_LAMBDAS) - 2
    assert np.isfinite(resumed.train_step()["loss"])
    with pytest.raises(ValueError, match="holds mbt2018"):
        Trainer(_settings(tmp_path, model="informer", resume=True))
    assert (tmp_path / "run" / CHECKPOINT).is_file()


def test_evaluate_scores_a_checkpoint_as_its_export_would_ship(tmp_path):
    """The shipping check: every quality level, and a checkpoint priced exactly as its exported file."""
    from informer_codec.models.base import DEFAULT_LAMBDAS
    from informer_codec.train.loop import Trainer, export

    settings = _settings(tmp_path, steps=1)
    Trainer(settings).run()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    export(checkpoint, tmp_path / "mbt2018.pt")
    common = ("--dataset", settings.dataset, "--patch", "64", "--threads", "1")
    result = run_cli("evaluate", tmp_path / "mbt2018.pt", checkpoint, *common, "--json")
    assert result.returncode == 0, result.stderr
    exported, scored = (json.loads(line)["levels"] for line in result.stdout.decode().splitlines())
    assert [level["lam"] for level in exported] == DEFAULT_LAMBDAS
    assert scored == exported
    assert all(level["bpp"] > 0 and level["loss"] > 0 for level in exported)
    # The live weights are not the average after one step: the table shows their change per level.
    table = run_cli("evaluate", tmp_path / "mbt2018.pt", checkpoint, "--live", *common)
    rows = table.stdout.decode().splitlines()
    assert table.returncode == 0 and len(rows) == 2 + len(DEFAULT_LAMBDAS)
    assert all(row.endswith("%)") for row in rows[1:-1])
    assert any(" %)" in row and "(+0.0 %)" not in row for row in rows[1:-1])
    assert rows[-1].startswith("BD-rate (PSNR) against the first, held-out crops: ")


def test_held_out_bd_rate_compares_the_curves_not_the_losses():
    from informer_codec.train.evaluate import LevelScore, held_out_bd_rates

    levels = [LevelScore(0.001 * 2**i, 25.0 * i, 0.1 * 2**i, 24.0 + 3 * i, 1.0) for i in range(5)]
    half_rate = [LevelScore(s.lam, s.quality, s.bpp / 2, s.psnr, 9.0) for s in levels]
    line = held_out_bd_rates(["a", "a again", "b"], [levels, levels, half_rate])
    assert line.endswith("a again +0.00 %, b -50.00 %")


def test_evaluate_refuses_a_file_that_is_neither_weights_nor_checkpoint(tmp_path):
    settings = _settings(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a weights file")
    result = run_cli("evaluate", tmp_path / "junk.pt", "--dataset", settings.dataset, "--patch", "64")
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1 and result.stderr.startswith(b"informer: ")


def test_init_from_a_checkpoint_starts_from_its_weight_average(tmp_path):
    from informer_codec.train.loop import Trainer, export
    from informer_codec.weights import load_file

    Trainer(_settings(tmp_path, steps=2)).run()
    export(tmp_path / "run" / "checkpoint.pt", tmp_path / "average.pt")
    fresh = Trainer(_settings(tmp_path, out=tmp_path / "next", init_from=tmp_path / "run" / "checkpoint.pt"))
    assert torch.equal(fresh.model.g_s[0].weight.detach(), load_file(tmp_path / "average.pt").g_s[0].weight)


def test_train_from_a_file_that_is_neither_weights_nor_checkpoint_is_one_line(tmp_path):
    folder = _settings(tmp_path).dataset
    (tmp_path / "junk.pt").write_bytes(b"not a weights file")
    result = run_cli("train", "--dataset", folder, "--out", tmp_path / "run", "--model", "mbt2018",
                     "--init-from", tmp_path / "junk.pt", "--device", "cpu")
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1 and result.stderr.startswith(b"informer: ")
    assert not (tmp_path / "run").exists()


def test_level_balance_weights_each_crop_by_its_lambda_around_the_levels_middle():
    from informer_codec.models.base import DEFAULT_LAMBDAS
    from informer_codec.train.loop import level_weights

    low, high = min(DEFAULT_LAMBDAS), max(DEFAULT_LAMBDAS)
    middle = float(np.exp(np.mean(np.log(DEFAULT_LAMBDAS))))
    weights = level_weights(DEFAULT_LAMBDAS, torch.tensor([low, middle, high]), 0.5)
    assert weights[1].item() == pytest.approx(1.0, rel=1e-5)
    assert (weights[0] / weights[2]).item() == pytest.approx((high / low) ** 0.5, rel=1e-4)
    assert torch.equal(level_weights(DEFAULT_LAMBDAS, torch.tensor([low, high]), 0.0), torch.ones(2))


def test_level_balance_reaches_the_loss_and_the_log(tmp_path):
    from informer_codec.train.loop import Trainer, rate_distortion

    trainer = Trainer(_settings(tmp_path, level_balance=0.5, steps=2))
    x = trainer.validation[:1].expand(2, -1, -1, -1)
    quality = torch.tensor([0.0, 100.0])
    with torch.no_grad():
        plain = rate_distortion(trainer.model.eval(), x, quality, False)
        balanced = rate_distortion(trainer.model, x, quality, False, level_balance=0.5)
    assert balanced["bpp"] == plain["bpp"] and balanced["mse"] == plain["mse"]
    assert balanced["loss"] != plain["loss"]
    trainer.run()
    assert "'level_balance': 0.5" in (tmp_path / "run" / "train.log").read_text()


def test_a_new_seed_draws_other_crops_and_the_same_seed_the_same(tmp_path):
    from informer_codec.train.loop import Trainer

    def first_crops(seed: int) -> torch.Tensor:
        return Trainer(_settings(tmp_path, seed=seed, out=tmp_path / f"run{seed}")).sampler.batch(4)

    assert torch.equal(first_crops(1), first_crops(1))
    assert not torch.equal(first_crops(1), first_crops(2))


def test_the_seed_option_reaches_the_run(tmp_path):
    folder = tmp_path / "big"  # the held-out photo must fit the default 256x256 validation crop
    folder.mkdir()
    for i in range(2):
        Image.fromarray(random_image(256, 256, seed=i)).save(folder / f"p{i}.png")
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", folder, "--out", out, "--model", "mbt2018", "--n", "16",
                     "--m", "32", "--patch", "64", "--batch", "1", "--steps", "1", "--threads", "1",
                     "--device", "cpu", "--seed", "5")
    assert result.returncode == 0, result.stderr.decode()
    assert "'seed': 5" in (out / "train.log").read_text()
