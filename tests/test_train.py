"""`informer train`: resumes exactly after a kill, and its export codes images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import random_image


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
