"""The training loop: bf16 autocast on CPU, exact resume after kill -9, DDP under torchrun.

Loss = lambda(q) * 255^2 * MSE + bpp, with a quality q drawn uniformly in
[0, 100] per crop, so one model learns the whole rate range (gain units).
Adam for the networks, a second Adam for the bottlenecks' quantiles, gradient
clipping at 1, and a learning rate that warms up then decays on a cosine:
a pure function of the step, so resuming needs no scheduler state. An
exponential moving average of the weights rides along; it is validated beside
the live weights and is what ``export`` freezes.
"""

from __future__ import annotations

import bisect
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from informer_codec.errors import WeightsError
from informer_codec.hardware import bf16_is_fast
from informer_codec.models import LatentCodecModel, ModelConfig, build_model
from informer_codec.models.base import likelihood_bits
from informer_codec.models.blocks import interpolate_lambda
from informer_codec.train.data import CropSampler, list_images, split, validation_crops

CHECKPOINT = "checkpoint.pt"
VALIDATION_QUALITIES = (0.0, 50.0, 100.0)


@dataclass
class TrainSettings:
    dataset: Path
    model: str
    out: Path
    steps: int = 100_000
    patch: int = 256
    batch: int = 8
    lr: float = 1e-4
    resume: bool = False
    init_from: Path | None = None
    n: int = 128
    m: int = 192
    warmup: int = 500
    final_lr_fraction: float = 0.1
    checkpoint_minutes: float = 5.0
    validate_every: int = 500
    validation_patch: int = 256
    log_every: int = 25
    seed: int = 777
    threads: int = 0
    ema_decay: float = 0.999  # 0: no weight average
    quantizer: str = "noise"  # "round": train on the real coding cost of round(y) (straight-through)
    level_balance: float = 0.0  # weight each crop's loss by (lambda / geometric-mean lambda) ** -this
    bf16: bool | None = None  # None: on where the hardware has it (CUDA, AMX or AVX512-BF16)
    device: str = "auto"  # auto: CUDA when torch sees a GPU, else the CPU


def resolve_device(choice: str) -> torch.device:
    """The training device: under torchrun each rank takes the GPU of its LOCAL_RANK."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but torch sees no CUDA GPU")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def learning_rate(s: TrainSettings, step: int) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = min(1.0, (step - s.warmup) / max(1, s.steps - s.warmup))
    floor = s.final_lr_fraction
    return s.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def resample_levels(table: torch.Tensor, old_lambdas: list[float], new_lambdas: list[float]) -> torch.Tensor:
    """Gain rows for new quality levels from trained ones, linear in log-gain over log-lambda.

    High-rate theory puts the best quantiser step at 1/sqrt(lambda), so a gain's log is close to
    linear in log-lambda: levels between trained ones interpolate and levels beyond them
    extrapolate from the two nearest, which starts new levels near their operating points
    instead of at an untrained guess.
    """
    x_old = [math.log(lam) for lam in old_lambdas]
    log_rows = torch.log(table.double().abs() + 1e-6)
    rows = []
    for lam in new_lambdas:
        x = math.log(lam)
        upper = min(max(bisect.bisect_left(x_old, x), 1), len(x_old) - 1)
        frac = (x - x_old[upper - 1]) / (x_old[upper] - x_old[upper - 1])
        rows.append(log_rows[upper - 1] + frac * (log_rows[upper] - log_rows[upper - 1]))
    return torch.exp(torch.stack(rows)).to(table.dtype)


def rate_distortion(model: LatentCodecModel, x: torch.Tensor, quality: torch.Tensor, bf16: bool,
                    quantizer: str | None = None, level_balance: float = 0.0) -> dict:
    """Per-batch loss, bpp and MSE; the loss terms are computed in float32.

    ``quantizer``: see :meth:`LatentCodecModel.forward` (None: noise in training, round in eval,
    so validation reports what the codec really spends). ``level_balance``: see
    :func:`level_weights`; 0 is the plain mean, which validation always uses.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x, quality, quantizer)
    pixels = x.shape[2] * x.shape[3]
    bits = likelihood_bits(out["likelihoods"])
    bpp = bits / pixels
    mse = (out["x_hat"].float() - x).pow(2).flatten(1).mean(dim=1)
    lam = interpolate_lambda(model.config.lambdas, quality)
    loss = (level_weights(model.config.lambdas, lam, level_balance) * (lam * 255**2 * mse + bpp)).mean()
    return {"loss": loss, "bpp": bpp.mean(), "mse": mse.mean()}


def level_weights(lambdas: list[float], lam: torch.Tensor, balance: float) -> torch.Tensor:
    """Per-crop loss weights ``(lam / geometric mean of lambdas) ** -balance``.

    A crop's rate-distortion loss grows with its lambda: over our ten levels the held-out
    loss runs from 0.23 to 4.3, so in a plain mean the highest qualities supply most of the
    gradient of the transforms that every quality shares. The loss grew about as
    lambda**0.47 there, so a balance near 0.5 lets every level pull about equally.
    """
    if not balance:
        return torch.ones_like(lam)
    middle = math.exp(sum(math.log(v) for v in lambdas) / len(lambdas))
    return (lam / middle) ** -balance


def _psnr(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-12))


class WeightAverage:
    """Exponential moving average of a model's floating-point weights (Polyak averaging).

    Why: with batches of 8 crops, Adam's weights jitter from step to step around
    where the loss is falling; their running mean sits nearer to it. On the
    held-out crops the average beat the live weights at q50 and q100 at every
    validation of two runs (docs/training.md, session 7). The decay ramps up as
    ``(1 + t) / (10 + t)`` over the first updates, so a short run's average is
    not dominated by its initial weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        live = model.state_dict()  # views of the parameters and buffers: they follow training
        floats = [k for k in self.state if live[k].is_floating_point()]
        self._averaged = [self.state[k] for k in floats]
        self._live = [live[k] for k in floats]

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, self._live, 1 - decay)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, saved: dict) -> None:
        for k, v in saved["state"].items():
            self.state[k].copy_(v)
        self.updates = saved["updates"]


class Trainer:
    """Owns the model, optimisers, data and checkpoints of one run."""

    def __init__(self, s: TrainSettings):
        self.device = resolve_device(s.device)
        if s.bf16 is None:
            s.bf16 = bf16_is_fast(self.device.type)
        self.s = s
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.distributed:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        if s.threads:
            torch.set_num_threads(s.threads)
        torch.manual_seed(s.seed + self.rank)
        checkpoint = s.out / CHECKPOINT
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False) if (
            s.resume and checkpoint.is_file()) else None  # read once: it is ~170 MB
        self.model = build_model(self._model_config(saved))
        source = load_weights_or_checkpoint(s.init_from) if s.init_from else None
        if s.patch % self.model.downsample or s.validation_patch % self.model.downsample:
            raise ValueError(f"--patch must be a multiple of {self.model.downsample} for {s.model}")
        train_paths, held_out = split(list_images(s.dataset))
        self.sampler = CropSampler(train_paths, s.patch, seed=s.seed + self.rank, device=self.device)
        self.validation = validation_crops(held_out, s.validation_patch).to(self.device)
        s.out.mkdir(parents=True, exist_ok=True)  # after the checks above: a refused run leaves nothing
        if source is not None:
            self._init_from(source, s.init_from)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        aux = [p for name, p in self.model.named_parameters() if name.endswith("quantiles")]
        main = [p for name, p in self.model.named_parameters() if not name.endswith("quantiles")]
        self.optimizer = torch.optim.Adam(main, lr=s.lr)
        self.aux_optimizer = torch.optim.Adam(aux, lr=1e-3)
        self.net = self.model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=True
            )
        self.average = WeightAverage(self.model, s.ema_decay) if s.ema_decay else None
        self.step = 0
        self.started = time.time()
        self.hours_before = 0.0
        if saved:
            self._load_checkpoint(saved)

    def _model_config(self, saved: dict | None) -> ModelConfig:
        """A new run's config, or on ``--resume`` the checkpoint's own: its quality levels may
        differ from today's defaults (session 10 added two), and its tensors must fit."""
        config = ModelConfig(name=self.s.model, n=self.s.n, m=self.s.m)
        if saved is None:
            return config
        kept = ModelConfig(**saved["config"])
        if (kept.name, kept.n, kept.m) != (config.name, config.n, config.m):
            raise ValueError(f"{self.s.out / CHECKPOINT} holds {kept.name} N={kept.n} M={kept.m}, "
                             f"not {config.name} N={config.n} M={config.m}")
        return kept

    def _init_from(self, source_model: LatentCodecModel, path: Path) -> None:
        """Start from ``path``'s model: the same model, or mbt2018's shared parts for Informer."""
        source = source_model.state_dict()
        own = self.model.state_dict()
        old_lambdas, new_lambdas = source_model.config.lambdas, self.model.config.lambdas
        if old_lambdas != new_lambdas:
            for key in ("gain.gain", "gain.inverse_gain"):
                source[key] = resample_levels(source[key].float(), old_lambdas, new_lambdas)
        shared = {
            k: v for k, v in source.items() if k in own and own[k].shape == v.shape and "tables" not in k
        }
        self.model.load_state_dict(shared, strict=False)
        self.log(f"init from {path}: {len(shared)} of {len(own)} tensors"
                 + (f"; quality levels {old_lambdas} -> {new_lambdas}" if old_lambdas != new_lambdas else ""))

    def log(self, line: str) -> None:
        if self.rank:
            return
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}"
        with open(self.s.out / "train.log", "a") as f:
            f.write(stamped + "\n")

    # ----- checkpoints ---------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        if self.rank:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "average": self.average.state_dict() if self.average else None,
            "step": self.step,
            "hours": self.hours_before + (time.time() - self.started) / 3600,
            "config": asdict(self.model.config),
            "rng": {
                "torch": torch.get_rng_state(),
                "data": self.sampler.generator.get_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            },
        }
        tmp = self.s.out / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.s.out / CHECKPOINT)

    def _load_checkpoint(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        if self.average and state.get("average"):
            self.average.load_state_dict(state["average"])
        elif self.average:  # a checkpoint from before the average: it starts from these weights
            self.average = WeightAverage(self.model, self.s.ema_decay)
        self.step = state["step"]
        self.hours_before = state.get("hours", 0.0)
        torch.set_rng_state(state["rng"]["torch"])
        self.sampler.generator.set_state(state["rng"]["data"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.log(f"resumed at step {self.step} ({self.hours_before:.2f} h trained before)")

    # ----- loop -----------------------------------------------------------------------
    def train_step(self) -> dict:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.s, self.step)
        x = self.sampler.batch(self.s.batch).contiguous(memory_format=torch.channels_last)
        quality = (torch.rand(x.shape[0]) * 100).to(self.device)
        self.net.train()
        metrics = rate_distortion(self.net, x, quality, self.s.bf16, self.s.quantizer, self.s.level_balance)
        self.optimizer.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.aux_optimizer.zero_grad(set_to_none=True)
        aux = self.model.aux_loss()
        aux.backward()
        self.aux_optimizer.step()
        if self.average:
            self.average.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in metrics.items()} | {"aux": float(aux.detach())}

    @torch.no_grad()
    def validate(self, model: LatentCodecModel | None = None) -> dict:
        """bpp and PSNR on the held-out crops at three qualities, of round(y) as the codec codes it.

        bpp is the likelihood of what would be coded (the exact path and the range coder added
        0.01-0.09 % on Kodak). Until 2026-11-24 it priced rounding about the means and medians,
        which the codec never codes and which promised up to 40 % fewer latent bits.
        """
        model = self.model if model is None else model
        model.eval()
        results = {}
        for q in VALIDATION_QUALITIES:
            quality = torch.full((len(self.validation),), q, device=self.device)
            m = rate_distortion(model, self.validation, quality, self.s.bf16)
            results[q] = (float(m["bpp"]), _psnr(float(m["mse"])), float(m["loss"]))
        return results

    def run(self) -> None:
        from tqdm import tqdm

        s = self.s
        self.log(f"start step {self.step}/{s.steps} settings {asdict(s)}")
        last_save = time.time()
        window_start, window_steps = time.time(), 0
        bar = tqdm(total=s.steps, initial=self.step, disable=self.rank != 0, dynamic_ncols=True)
        while self.step < s.steps:
            m = self.train_step()
            window_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{m['loss']:.3f}", bpp=f"{m['bpp']:.3f}")
            if self.step % s.log_every == 0:
                rate = window_steps / (time.time() - window_start)
                self.log(
                    f"step {self.step} loss {m['loss']:.4f} bpp {m['bpp']:.4f} "
                    f"psnr {_psnr(m['mse']):.2f} aux {m['aux']:.1f} "
                    f"lr {learning_rate(s, self.step):.2e} steps/s {rate:.3f}"
                )
                window_start, window_steps = time.time(), 0
            if self.step % s.validate_every == 0 or self.step == s.steps:
                self.log_validation()
            if time.time() - last_save > s.checkpoint_minutes * 60 or self.step == s.steps:
                self._save_checkpoint()
                last_save = time.time()
        bar.close()

    def averaged_model(self) -> LatentCodecModel:
        """A copy of the model holding the weight average."""
        model = build_model(self.model.config)
        model.load_state_dict(self.average.state)
        return model.to(self.device, memory_format=torch.channels_last)

    def log_validation(self) -> None:
        """One ``val`` line for the live weights and, with an average, one ``val-avg`` line."""
        runs = [("val", self.model)] + ([("val-avg", self.averaged_model())] if self.average else [])
        for label, model in runs:
            v = self.validate(model)
            parts = [f"q{q:.0f} bpp {b:.4f} psnr {p:.2f} loss {lo:.4f}" for q, (b, p, lo) in v.items()]
            self.log(f"{label} step {self.step} " + " | ".join(parts))


def export(checkpoint: Path, out: Path, record: bool = False, live: bool = False) -> bytes:
    """Write a frozen fp16 weights file from a training checkpoint; returns its sha256.

    The checkpoint's weight average is exported when it has one, unless ``live``.
    """
    from informer_codec.weights import record_shipped, save_file

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = build_model(ModelConfig(**state["config"]))
    average = state.get("average")
    model.load_state_dict(state["model"] if live or not average else average["state"])
    digest = save_file(model, out)
    if record:
        record_shipped(model.config.name, digest)
    return digest


def load_weights_or_checkpoint(path: Path, live: bool = False) -> LatentCodecModel:
    """A weights file as it is, or a training checkpoint as :func:`export` would write it.

    Evaluation and ``--init-from`` take either, so a checkpoint needs no export step first.
    Raises :class:`WeightsError` if ``path`` is neither.
    """
    from informer_codec.weights import load_file

    try:
        return load_file(path)
    except WeightsError:
        pass
    with tempfile.TemporaryDirectory() as folder:
        exported = Path(folder) / "exported.pt"
        try:
            export(path, exported, live=live)
        except Exception:  # torch's and pickle's messages run over many lines
            raise WeightsError(f"{path}: neither a weights file nor a training checkpoint") from None
        return load_file(exported)
