"""The ``informer`` command line. Thin: it parses flags, calls the API, prints.

Exit status: 0 success; 1 bad input, a corrupt file or a failed decode;
2 usage error (bad flags or arguments).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from informer_codec import __version__
from informer_codec.container import VERSION as FORMAT_VERSION


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="informer",
                      message="%(prog)s %(version)s (container format {}.{})".format(*FORMAT_VERSION))
def main() -> None:
    """informer: a learned image codec (Informer, mbt2018).

    \b
    Exit status: 0 ok, 1 bad input or failed decode, 2 usage error.
    """


@main.command()
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of training photos (searched recursively).")
@click.option("--model", type=click.Choice(["informer", "mbt2018"]), default="informer", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoint folder (checkpoint.pt, train.log).")
@click.option("--steps", type=int, default=100_000, show_default=True, help="Total steps of the schedule.")
@click.option("--patch", type=int, default=256, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt if it exists.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from a weights file or a training checkpoint (the shipped weights, or "
                   "mbt2018's for Informer).")
@click.option("--n", "n", type=int, default=128, show_default=True, help="Transform width N.")
@click.option("--m", "m", type=int, default=192, show_default=True, help="Latent channels M.")
@click.option("--threads", type=int, default=0, help="torch threads (0: all cores).")
@click.option("--checkpoint-minutes", type=float, default=5.0, show_default=True)
@click.option("--validate-every", type=int, default=500, show_default=True)
@click.option("--ema-decay", type=float, default=0.999, show_default=True,
              help="Decay of the weight average that export ships (0: none).")
@click.option("--quantizer", type=click.Choice(["noise", "round"]), default="noise", show_default=True,
              help="Training proxy for rounding: uniform noise, or round(y) with its real coding cost "
                   "(straight-through; for fine-tuning).")
@click.option("--level-balance", type=float, default=0.0, show_default=True,
              help="Weight each crop's loss by lambda**-B (relative to the levels' middle), so low "
                   "qualities steer the shared transforms as much as high ones (0: plain mean).")
@click.option("--seed", type=int, default=777, show_default=True,
              help="Seed of a fresh run's crops and noise; a new seed gives a new stretch other crops "
                   "than the last (a resumed run keeps its checkpoint's random states).")
@click.option("--bf16/--no-bf16", default=None, help="bf16 autocast (default: where the hardware has it).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where training runs (auto: a CUDA GPU if torch sees one; under torchrun, one per rank).")
def train(**options) -> None:
    """Train a model on a folder of photos (resumable; also runs under torchrun)."""
    from informer_codec.errors import WeightsError
    from informer_codec.train.loop import Trainer, TrainSettings

    try:
        trainer = Trainer(TrainSettings(**options))
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    except WeightsError as exc:
        click.echo(f"informer: {exc}", err=True)
        raise SystemExit(1) from None
    trainer.run()


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ship", is_flag=True, help="Record the digest as the shipped weights of this model.")
@click.option("--live", is_flag=True, help="Export the live weights, not the checkpoint's weight average.")
def export(checkpoint: Path, weights: Path, ship: bool, live: bool) -> None:
    """Freeze a training checkpoint (its weight average, if it has one) into a compact weights file."""
    from informer_codec.train.loop import export as run_export

    digest = run_export(checkpoint, weights, record=ship, live=live)
    click.echo(f"{weights}: sha256 {digest.hex()}", err=True)


@main.command()
@click.argument("models", nargs=-1, required=True, metavar="WEIGHTS_OR_CHECKPOINT...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The training folder; its held-out photos (every 50th by name) give the crops.")
@click.option("--patch", type=int, default=256, show_default=True, help="Size of the held-out crops.")
@click.option("--live", is_flag=True, help="Score checkpoints' live weights, not their weight average.")
@click.option("--threads", type=int, default=0, help="torch threads (0: all cores).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model on stdout.")
def evaluate(models, dataset: Path, patch: int, live: bool, threads: int, as_json: bool) -> None:
    """Held-out bpp, PSNR and loss at every quality level; later models against the first.

    Checkpoints are scored as `informer export` would write them, so comparing the shipped
    weights file with a checkpoint answers whether the export would be better.
    """
    import json
    from dataclasses import asdict

    import torch

    from informer_codec.errors import WeightsError
    from informer_codec.train.evaluate import comparison_table, held_out_crops, score
    from informer_codec.train.loop import load_weights_or_checkpoint

    if threads:
        torch.set_num_threads(threads)
    try:
        crops = held_out_crops(dataset, patch)
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    results = []
    for path in models:
        try:
            model = load_weights_or_checkpoint(path, live)
        except WeightsError as exc:
            click.echo(f"informer: {exc}", err=True)
            raise SystemExit(1) from None
        results.append(score(model, crops))
        if as_json:
            click.echo(json.dumps({"file": str(path), "levels": [asdict(s) for s in results[-1]]}))
    if not as_json:
        click.echo("\n".join(comparison_table([str(p) for p in models], results)))


def _device_option(f):
    return click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                        help="Where the transforms run; entropy parameters are always exact on the CPU.")(f)


def _parse_shard(ctx, param, value):
    from informer_codec.cli_batch import parse_shard

    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _common_options(f):
    f = click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None,
                     help="Write every INPUT into this folder (then all arguments are inputs).")(f)
    f = click.option("--quiet", is_flag=True, help="No summary lines on stderr.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="One JSON object per image on stdout.")(f)
    f = click.option("--max-pixels", type=int, default=268_435_456, show_default=True,
                     help="Refuse images with more pixels (0: no limit).")(f)
    f = click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Worker processes, each with cores/JOBS torch threads; with more than one, "
                          "files are reported as they finish.")(f)
    f = click.option("--threads", type=click.IntRange(min=0), default=0,
                     help="torch threads per process [default: all cores, or cores/JOBS with --jobs]. "
                          "Running several informer commands at once (xargs -P, GNU parallel)? Give "
                          "each --threads 1.")(f)
    f = click.option("--shard", metavar="I/N", default=None, callback=_parse_shard,
                     help="Process only the inputs whose 0-based position in the argument list is I "
                          "mod N (one share of a collection split across machines).")(f)
    f = click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr [default: with several inputs, on a terminal, "
                          "unless --quiet].")(f)
    return _device_option(f)


def _batch(paths, out_dir, suffix: str, quiet: bool, as_json: bool, jobs: int, threads: int, shard, progress):
    """The (input, output) pairs of this run (this shard's share), ready to process."""
    from informer_codec.cli_batch import Batch, select_shard
    from informer_codec.cli_io import plan_outputs

    pairs = select_shard(plan_outputs(paths, out_dir, suffix), shard)
    return Batch(quiet, as_json, pairs, jobs=jobs, progress=progress, threads=threads)


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.UsageError("--device cuda: no CUDA device is available")


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="INPUT... [OUTPUT]")
@click.option("-q", "--quality", type=click.FloatRange(0, 100), default=75.0, show_default=True,
              help="Any value in 0-100; higher is better quality and more bytes.")
@click.option("--model", type=click.Choice(["informer", "mbt2018"]), default="informer", show_default=True)
@click.option("--strip", is_flag=True, help="Drop the ICC profile and EXIF (kept by default).")
@click.option("--refine", type=click.IntRange(0, 10_000), default=0, show_default=True, metavar="N",
              help="Fit the latents to each image with N gradient steps before coding: smaller files "
                   "at the same quality, each step about one forward and backward pass (0: off).")
@_common_options
def encode(paths, quality, model, strip, refine, out_dir, quiet, as_json, max_pixels, jobs, threads, shard,
           progress, device) -> None:
    """Compress images: `informer encode IN OUT` or `informer encode IN... -o DIR`.

    \b
    '-' reads stdin / writes stdout. Inputs are anything Pillow reads.
    Grayscale and palette images become RGB, 16-bit images become 8-bit and
    an opaque alpha channel is dropped, each with a note on stderr; images
    with real transparency are refused. The ICC profile and EXIF are kept
    unless --strip. Output is written atomically.
    """
    from informer_codec.cli_batch import EncodeSettings, encode_file

    _check_device(device)
    batch = _batch(paths, out_dir, ".inf", quiet, as_json, jobs, threads, shard, progress)
    batch.each(partial(encode_file, EncodeSettings(model, quality, strip, max_pixels, device, refine)))


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="INPUT... [OUTPUT]")
@_common_options
def decode(paths, out_dir, quiet, as_json, max_pixels, jobs, threads, shard, progress, device) -> None:
    """Decompress .inf files: `informer decode IN OUT` or `informer decode IN... -o DIR`.

    The output format follows OUTPUT's extension (.png, .tif, .bmp, .ppm, .jpg,
    ... anything Pillow writes); '-' writes PNG to stdout; -o DIR writes PNG.
    """
    from informer_codec.cli_batch import DecodeSettings, decode_file

    _check_device(device)
    batch = _batch(paths, out_dir, ".png", quiet, as_json, jobs, threads, shard, progress)
    batch.each(partial(decode_file, DecodeSettings(max_pixels, device)))


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout, one object per file.")
def info(paths, as_json) -> None:
    """Describe .inf files: model, quality, size, bytes per chunk, bpp (no decoding)."""
    import json

    from informer_codec.cli_io import read_input
    from informer_codec.codec import describe
    from informer_codec.errors import InformerError

    failed = 0
    for path in paths:
        try:
            d = describe(read_input(path))
        except InformerError as exc:
            failed += 1
            click.echo(f"informer: {path}: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps({"file": path} | d))
            continue
        chunks = ", ".join(f"{k} {v}" for k, v in d["chunks"].items())
        tiles = f"{d['tiles']} tiles of {d['tile_size']} px" if d["tile_size"] else "1 tile"
        click.echo(f"{path}: {d['model']} q{d['quality']:g}, {d['width']}x{d['height']}, {tiles}, "
                   f"{d['bytes']} bytes, {d['bpp']:.4f} bpp; chunks: {chunks}")
    if failed:
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/bench"),
              show_default=True, help="Folder for <codec>.json, bd_rate.md, rd.png, speed.md, summary.md.")
@click.option("--models", default="informer,mbt2018", show_default=True,
              help="Our models, comma-separated ('none': baselines only).")
@click.option("--qualities", default="0,15,30,50,70,85,100", show_default=True,
              help="Our quality sweep, comma-separated values in 0-100.")
@click.option("--refine", type=click.IntRange(0, 10_000), default=0, show_default=True, metavar="N",
              help="Our encoder's latent refinement steps (curves are named <model>-refine<N>).")
@click.option("--baselines", default="all", show_default=True,
              help="Pillow codecs: jpeg-420,jpeg-444,webp,avif-420,avif-444,jpeg2000 ('none': skip).")
@click.option("--anchor", default=None,
              help="BD reference: a measured codec, a results JSON path, or a file stem in --anchors-dir "
                   "[default: vtm if found, else the first measured codec].")
@click.option("--anchors-dir", type=click.Path(path_type=Path), default=Path("../shared/anchors/kodak"),
              show_default=True, help="CompressAI results files to plot beside ours (skipped if absent).")
@click.option("--bd-method", type=click.Choice(["pchip", "akima", "cubic"]), default="pchip",
              show_default=True, help="Interpolation of the Bjontegaard deltas.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Processes for the Pillow codecs.")
@click.option("--limit", type=int, default=0, help="Use only the first N images (0: all).")
@click.option("--speed/--no-speed", default=True, show_default=True,
              help="Time our models against CompressAI's on the first image, and our peak decode memory.")
def bench(directory, **options) -> None:
    """Rate-distortion and speed benchmark of our models against Pillow's codecs and published anchors."""
    from informer_codec.bench.run import parse_settings, run_bench

    try:
        settings = parse_settings(directory, **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    run_bench(settings)
