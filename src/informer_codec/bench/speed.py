"""Speed side by side on one image: our codec against CompressAI's own models, plus our peak memory.

CompressAI's ``JointAutoregressiveHierarchicalPriors`` (mbt2018) and ``ScaleHyperprior`` run their
own ``compress``/``decompress`` (rANS, a Python loop over latent positions for mbt2018). Untrained
weights give degenerate latents and unrepresentative times, so we copy our shipped mbt2018's
parameters into them wherever the shapes match in order, folding our quality gain at the measured
quality into the last analysis and first synthesis layers: CompressAI's mbt2018 then codes
essentially our latents. ScaleHyperprior's h_s has other shapes and keeps seeded random weights, so
its rate is meaningless; only its time is of interest. These are figures, never test assertions.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPEATS = 5
QUALITY = 75.0
# Runs one decode as a child and reports the child's peak RSS (KiB on Linux): the probe's own
# children are only that decode, whatever this process ran before.
_RSS_PROBE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
# (our submodule, CompressAI's) pairs whose parameters are copied where shapes match
_PAIRS = (("g_a", "g_a"), ("g_s", "g_s"), ("h_a", "h_a"), ("h_s", "h_s"), ("context", "context_prediction"),
          ("entropy_parameters", "entropy_parameters"), ("entropy_bottleneck", "entropy_bottleneck"))


@dataclass
class Timing:
    name: str
    bytes: int
    encode_s: float
    decode_s: float
    note: str = ""


@dataclass
class _Coder:
    """One codec under test: its encode call, its decode of what that returned, and the size of it."""

    name: str
    note: str
    encode: Callable[[], Any]
    decode: Callable[[Any], Any]
    size: Callable[[Any], int]


def time_in_rounds(coders: list[_Coder], repeats: int = REPEATS) -> tuple[list[Timing], dict[str, Any]]:
    """Median encode and decode seconds of every coder, and each one's last encoded result.

    Each round times every coder once, in turn, so a slow spell of the machine (these VMs move
    by 20-40 % between runs) falls on all of them instead of on whichever ran through it. An
    untimed first round pays the one-time costs: oneDNN's primitive setup, our lazy tables.
    """
    from tqdm import tqdm

    encode_s: dict[str, list[float]] = {c.name: [] for c in coders}
    decode_s: dict[str, list[float]] = {c.name: [] for c in coders}
    results: dict[str, Any] = {}
    for round_index in tqdm(range(repeats + 1), desc="speed rounds", unit="round"):
        for coder in coders:
            start = time.perf_counter()
            results[coder.name] = coder.encode()
            encoded = time.perf_counter()
            coder.decode(results[coder.name])
            if round_index:
                encode_s[coder.name].append(encoded - start)
                decode_s[coder.name].append(time.perf_counter() - encoded)
    timings = [
        Timing(c.name, c.size(results[c.name]), statistics.median(encode_s[c.name]),
               statistics.median(decode_s[c.name]), c.note)
        for c in coders
    ]
    return timings, results


def _our_coder(model: str, pixels: np.ndarray, quality: float) -> _Coder:
    """Our codec through informer_codec.codec, weights loaded beforehand."""
    from informer_codec import codec
    from informer_codec.bench.ours import warm_up

    warm_up(model)
    return _Coder(f"{model} (ours)", "real .inf bytes",
                  lambda: codec.encode(pixels, model=model, quality=quality).data, codec.decode, len)


def peak_decode_rss_mib(data: bytes) -> float:
    """Peak RSS of one ``informer decode`` of ``data`` in a fresh process (Python and torch included)."""
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "image.inf", Path(folder) / "image.png"
        source.write_bytes(data)
        command = [sys.executable, "-c", _RSS_PROBE,
                   sys.executable, "-m", "informer_codec", "decode", str(source), str(target), "--quiet"]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return int(output.split()[-1]) / 1024


def _pad(pixels: np.ndarray, multiple: int = 64):
    """(1, 3, H', W') in [0, 1], replicate-padded like our codec pads (CompressAI needs multiples of 64)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float().div_(255)
    h, w = x.shape[2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


def _copy_matching(ours, theirs) -> tuple[int, int]:
    """Copy parameters pairwise in order where shapes match; (copied, total of theirs)."""
    import torch

    copied = total = 0
    with torch.no_grad():
        for mine, other in _PAIRS:
            if not hasattr(theirs, other):
                continue
            target = list(getattr(theirs, other).parameters())
            total += len(target)
            if not hasattr(ours, mine):
                continue
            for src, dst in zip(getattr(ours, mine).parameters(), target, strict=False):
                if src.shape == dst.shape:
                    dst.copy_(src)
                    copied += 1
    return copied, total


def _fold_gain(ours, theirs, quality: float) -> None:
    """Our y is gain * g_a(x) and g_s sees inverse_gain * y_hat: fold both into CompressAI's layers."""
    import torch

    q = torch.tensor([quality])
    with torch.no_grad():
        gain = ours.gain._interpolate(ours.gain.gain, q).flatten()
        inverse = ours.gain._interpolate(ours.gain.inverse_gain, q).flatten()
        last, first = theirs.g_a[-1], theirs.g_s[0]
        if last.weight.shape[0] == gain.numel() and first.weight.shape[0] == inverse.numel():
            last.weight.mul_(gain[:, None, None, None])
            last.bias.mul_(gain)
            first.weight.mul_(inverse[:, None, None, None])  # ConvTranspose2d: (in, out, k, k)


def _compressai_model(kind: str, quality: float):
    """A CompressAI model (N=128, M=192) with our mbt2018's parameters where they fit, ready to code."""
    import torch
    from compressai.models import JointAutoregressiveHierarchicalPriors, ScaleHyperprior

    from informer_codec import weights

    torch.manual_seed(0)
    cls = JointAutoregressiveHierarchicalPriors if kind == "mbt2018" else ScaleHyperprior
    net = cls(N=128, M=192).eval()
    try:
        ours = weights.load("mbt2018", "cpu")[0]
        copied, total = _copy_matching(ours, net)
        _fold_gain(ours, net, quality)
        note = f"{copied}/{total} parameter tensors from our mbt2018"
    except Exception as exc:  # no mbt2018 weights: time the seeded untrained model and say so
        note = f"untrained (seeded): {exc}"
    net.update(force=True)
    return net, note


def _compressai_coder(kind: str, pixels: np.ndarray, quality: float) -> _Coder:
    """CompressAI's own model, its ``compress``/``decompress`` on the padded image."""
    import torch

    net, note = _compressai_model(kind, quality)
    x = _pad(pixels)

    def encode():
        with torch.no_grad():
            return net.compress(x)

    def decode(out):
        with torch.no_grad():
            return net.decompress(out["strings"], out["shape"])

    def size(out) -> int:
        return sum(len(s) for strings in out["strings"] for s in strings)

    if kind == "mbt2018":
        note = f"JointAutoregressiveHierarchicalPriors, stream bytes only; {note}"
        return _Coder("CompressAI mbt2018", note, encode, decode, size)
    return _Coder("CompressAI ScaleHyperprior", f"stream bytes only; {note}", encode, decode, size)


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def _precision_note() -> str:
    """What ran in which precision: the decoder is float32 everywhere (docs/performance.md, session
    20); only our encoder's analysis uses bf16, and only where the CPU is fast at it."""
    from informer_codec.hardware import bf16_is_fast

    analysis = "bf16 (this CPU is fast at it)" if bf16_is_fast("cpu") else "float32 (no fast bf16 here)"
    return (f"Our decoders ran in float32 (exact float64 entropy parameters), our encoders' analysis in "
            f"{analysis}; CompressAI's models run in float32.")


def _ratio(reference: float, ours: float) -> str:
    return f"{reference / ours:.2f}x" if ours > 0 else "n/a"


def report_in_fresh_process(image: Path, models: list[str]) -> str:
    """:func:`report` run by a new Python process, whose markdown is returned.

    Timings taken after the rate-distortion sweep in the same process came out
    slower (Informer's decode of kodim01: 1.29 s there, 0.87 s in a fresh process
    the next day, same code and weights, machine idle both times), so the section runs where
    nothing else has run before it, ours and CompressAI's side by side.
    """
    command = [sys.executable, "-m", "informer_codec.bench.speed", str(image), ",".join(models)]
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout


def report(image: Path, pixels: np.ndarray, models: list[str], quality: float = QUALITY) -> str:
    """Measure everything and return the markdown section (speed.md)."""
    ours = [_our_coder(model, pixels, quality) for model in models]
    theirs = [_compressai_coder(kind, pixels, quality) for kind in ("mbt2018", "scale-hyperprior")]
    timings, results = time_in_rounds(ours + theirs)
    rss = {model: peak_decode_rss_mib(results[coder.name]) for model, coder in zip(models, ours, strict=True)}
    return _markdown(image, pixels, quality, timings[: len(ours)], timings[len(ours) :], rss)


def _markdown(image: Path, pixels: np.ndarray, quality: float, ours: list[Timing], theirs: list[Timing],
              rss: dict[str, float]) -> str:
    h, w = pixels.shape[:2]
    lines = [
        f"Speed on {image.name} ({w}x{h}), quality {quality:g}, one fresh process: median of {REPEATS} "
        f"rounds, each timing every codec once in turn, after an untimed warm-up round. "
        f"Machine: {_machine()}.",
        "",
        "| codec | bytes | bpp | encode (s) | decode (s) | note |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {t.name} | {t.bytes} | {t.bytes * 8 / (w * h):.4f} | {t.encode_s:.3f} | {t.decode_s:.3f} | "
              f"{t.note} |" for t in ours + theirs]
    lines += ["", "Ratios: CompressAI's time / ours (above 1: ours is faster).", "",
              "| ours | " + " | ".join(f"encode vs {t.name} | decode vs {t.name}" for t in theirs) + " |",
              "|---|" + "---|---|" * len(theirs)]
    for t in ours:
        cells = [f"{_ratio(r.encode_s, t.encode_s)} | {_ratio(r.decode_s, t.decode_s)}" for r in theirs]
        lines.append(f"| {t.name} | " + " | ".join(cells) + " |")
    lines += ["", "Peak memory of one `informer decode` of this image in a fresh process "
              "(RSS high-water mark, Python and torch included):", "",
              "| model | peak RSS (MiB) |", "|---|---|"]
    lines += [f"| {model} | {mib:.0f} |" for model, mib in rss.items()]
    lines += ["", "CompressAI's models: N=128, M=192, eval mode, `.update(force=True)`, compress/decompress "
              "on the image replicate-padded to a multiple of 64; parameters copied from our shipped mbt2018 "
              "where shapes match in order, with our quality gain folded into g_a's last and g_s's first "
              "layer. ScaleHyperprior's h_s keeps seeded random weights (other shapes), so its bytes "
              "mean nothing. Figures only: timings vary with load and threads.", "",
              _precision_note()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    """``python -m informer_codec.bench.speed IMAGE MODELS``: the speed section on stdout."""
    from informer_codec import images

    image, models = Path(argv[0]), argv[1].split(",")
    print(report(image, images.load(image.read_bytes(), max_pixels=0).pixels, models), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
