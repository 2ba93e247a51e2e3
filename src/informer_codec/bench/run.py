"""`informer bench DIR`: our models, Pillow's codecs and published anchors on one image set.

Writes to --out: ``<codec>.json`` (CompressAI's results schema), ``bd_rate.md``, ``rd.png``,
``speed.md`` and ``summary.md``. Settings are parsed and checked before anything runs, so a typo
in --anchor fails in a second rather than after the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from informer_codec.bench import baselines as pillow
from informer_codec.bench.results import Curve

DEFAULT_QUALITIES = "0,15,30,50,70,85,100"
DEFAULT_MODELS = "informer,mbt2018"
DEFAULT_ANCHOR = "vtm"
# References of the "ours against each" BD-rate matrix, when measured or present as anchors.
MATRIX_REFERENCES = ("avif-444", "avif-420", "webp", "jpeg-420", "jpeg-444", "jpeg2000", "vtm", "bpg")

# Anchors drawn in the plot and listed in the BD table (when present in the anchors folder).
PLOT_ANCHORS = ("vtm", "hm", "bpg_444_x265_ycbcr", "av1", "paper-mbt2018", "compressai-mbt2018_mse_cpu",
                "compressai-bmshj2018-hyperprior_mse_cpu")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class BenchSettings:
    images: list[Path]
    out: Path
    models: list[str]
    qualities: list[float]
    baselines: list[str]
    anchor: str  # a measured curve's name, or the path of a results JSON file
    anchors: list[Path] = field(default_factory=list)  # anchor files to plot
    bd_method: str = "pchip"
    jobs: int = 1
    speed: bool = True
    refine: int = 0  # our encoder's latent refinement steps

    def our_curves(self) -> list[str]:
        """The names our models' curves carry (see :func:`ours.curve_name`)."""
        from informer_codec.bench.ours import curve_name

        return [curve_name(model, self.refine) for model in self.models]


def _names(text: str) -> list[str]:
    text = text.strip()
    return [] if text.lower() in ("", "none") else [n.strip() for n in text.split(",") if n.strip()]


def _qualities(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--qualities: not a comma-separated list of numbers: {text!r}") from None
    if not values or any(not 0 <= v <= 100 for v in values):
        raise ValueError("--qualities: give one or more values within 0-100")
    return sorted(set(values))


def _models(text: str) -> list[str]:
    from informer_codec.models import MODEL_NAMES

    models = _names(text)
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODEL_NAMES)})")
    return models


def _baselines(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return pillow.available()
    names = _names(text)
    unknown = [n for n in names if n not in pillow.BASELINES]
    if unknown:
        raise ValueError(f"--baselines: unknown {', '.join(unknown)} (known: {', '.join(pillow.BASELINES)})")
    missing = [n for n in names if n not in pillow.available()]
    if missing:
        raise ValueError(f"--baselines: this Pillow build cannot write {', '.join(missing)}")
    return names


def list_images(directory: Path, limit: int = 0) -> list[Path]:
    """Image files in DIR (not recursive), sorted by name; the first ``limit`` if given."""
    found = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"no images in {directory} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found[:limit] if limit > 0 else found


def _check_results_file(path: Path) -> None:
    from informer_codec.bench.results import read_json

    try:
        read_json(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--anchor {path}: not a results file in CompressAI's schema ({exc!r})") from None


def _anchor(name: str | None, measured: list[str], anchors_dir: Path | None) -> str:
    """Resolve --anchor to a measured curve's name or a results file path (as a string)."""
    if name is None:
        if anchors_dir is not None and (anchors_dir / f"{DEFAULT_ANCHOR}.json").is_file():
            return str(anchors_dir / f"{DEFAULT_ANCHOR}.json")
        if not measured:
            raise ValueError("nothing to measure: give --models or --baselines")
        return measured[0]
    if name in measured:
        return name
    for candidate in (Path(name), (anchors_dir or Path(".")) / f"{name}.json"):
        if candidate.suffix == ".json" and candidate.is_file():
            _check_results_file(candidate)
            return str(candidate)
    raise ValueError(f"--anchor {name!r} is neither a measured codec ({', '.join(measured) or 'none'}) "
                     f"nor a results JSON file (nor {name}.json in the anchors folder)")


def parse_settings(directory: Path, out: Path, models: str = DEFAULT_MODELS,
                   qualities: str = DEFAULT_QUALITIES, baselines: str = "all", anchor: str | None = None,
                   anchors_dir: Path | None = None, bd_method: str = "pchip", jobs: int = 1, limit: int = 0,
                   speed: bool = True, refine: int = 0) -> BenchSettings:
    """Check every option (ValueError with a user-facing message) before any work starts."""
    if jobs < 1 or limit < 0:
        raise ValueError("--jobs must be at least 1 and --limit at least 0")
    if anchors_dir is not None and not anchors_dir.is_dir():
        anchors_dir = None
    from informer_codec.bench.ours import curve_name

    chosen_models, chosen_baselines = _models(models), _baselines(baselines)
    measured = [curve_name(m, refine) for m in chosen_models] + chosen_baselines
    if not measured:
        raise ValueError("nothing to measure: give --models or --baselines")
    anchors = [anchors_dir / f"{a}.json" for a in PLOT_ANCHORS] if anchors_dir else []
    return BenchSettings(list_images(directory, limit), out, chosen_models, _qualities(qualities),
                         chosen_baselines, _anchor(anchor, measured, anchors_dir),
                         [a for a in anchors if a.is_file()], bd_method, jobs, speed, refine)


def _load(paths: list[Path]) -> list[np.ndarray]:
    from informer_codec import images

    return [images.load(path.read_bytes(), max_pixels=0).pixels for path in paths]


def _our_curves(settings: BenchSettings, pixels: list[np.ndarray]) -> list[Curve]:
    from informer_codec.bench import ours
    from informer_codec.bench.results import from_measurements

    measured = ours.run(settings.models, settings.qualities, pixels, settings.refine)
    sweep = ", ".join(f"{q:g}" for q in settings.qualities)
    refined = f", latents refined in {settings.refine} steps" if settings.refine else ""
    return [from_measurements(
        ours.curve_name(model, settings.refine),
        f"{model} (ours), weights sha256 {ours.weights_digest(model)}..., qualities {sweep}{refined}, "
        f"real .inf container bytes, PSNR/MS-SSIM on the 8-bit decoded image",
        points, "ours", {"quality": settings.qualities, "images": len(pixels)},
    ) for model, points in measured.items()]


def _baseline_curves(settings: BenchSettings) -> list[Curve]:
    import PIL

    from informer_codec.bench.results import from_measurements

    measured = pillow.run(settings.baselines, settings.images, settings.jobs)
    curves = []
    for name, points in measured.items():
        b = pillow.BASELINES[name]
        settings_record = {b.param_name: list(b.params), "images": len(settings.images)}
        curves.append(from_measurements(name, f"{b.description}; Pillow {PIL.__version__}", points,
                                        "baseline", settings_record))
    return curves


def _sweep(curve: Curve) -> tuple[list, str]:
    """The sweep values and their name, from the settings stored with a measured curve."""
    key = next((k for k in curve.settings if k != "images"), "point")
    return list(curve.settings.get(key, range(len(curve.bpp)))), key


def _anchor_curves(settings: BenchSettings, measured: list[Curve]) -> tuple[list[Curve], Curve]:
    """The anchor files to plot, plus the BD anchor (a measured curve or one of these files).

    A file whose stem equals a measured codec's name (say a previous run's mbt2018.json) is
    renamed "<stem> (file)", so the table never confuses the two.
    """
    from informer_codec.bench.results import read_json

    paths = list(settings.anchors)
    if settings.anchor.endswith(".json") and Path(settings.anchor) not in paths:
        paths.append(Path(settings.anchor))
    taken = {c.name for c in measured}
    anchors = []
    for path in paths:
        curve = read_json(path)
        if curve.name in taken:
            curve.name = f"{curve.name} (file)"
        anchors.append(curve)
    if settings.anchor.endswith(".json"):
        return anchors, anchors[paths.index(Path(settings.anchor))]
    return anchors, next(c for c in measured if c.name == settings.anchor)


def _context(settings: BenchSettings, anchors: list[Curve], anchor: Curve) -> list[str]:
    first = settings.images[0]
    return [
        f"images: {len(settings.images)} from {first.parent} (first: {first.name})",
        f"our models: {', '.join(settings.our_curves()) or 'none'} at qualities "
        f"{', '.join(f'{q:g}' for q in settings.qualities)}",
        f"baselines (Pillow): {', '.join(settings.baselines) or 'none'}; --jobs {settings.jobs}",
        f"anchors: {', '.join(c.name for c in anchors) or 'none'} (published means over all 24 Kodak "
        "images: compare with them only on the full Kodak set)",
        f"BD method: {settings.bd_method}; BD anchor: {anchor.name}",
    ]


def run_bench(settings: BenchSettings) -> dict[str, Path]:
    """Run everything and write the outputs; returns their paths by name."""
    from informer_codec.bench import bdrate, plot, report
    from informer_codec.bench.results import write_json

    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    pixels = _load(settings.images)
    measured = _our_curves(settings, pixels) + _baseline_curves(settings)
    written = {}
    for curve in measured:
        written[curve.name] = out / f"{curve.name}.json"
        write_json(curve, written[curve.name])
    anchors, anchor = _anchor_curves(settings, measured)
    everything = measured + anchors
    bd_markdown = bdrate.table(everything, anchor, settings.bd_method)
    our_names = settings.our_curves()
    ours = [c for c in measured if c.name in our_names]
    references = [c for c in everything if c.name not in our_names and c.name in MATRIX_REFERENCES]
    if ours and references:
        bd_markdown += "\n" + bdrate.matrix(ours, references, settings.bd_method)
    print(bd_markdown)
    written["bd_rate"] = out / "bd_rate.md"
    written["bd_rate"].write_text(bd_markdown)
    written["rd"] = out / "rd.png"
    title = f"Rate-distortion, {len(settings.images)} image(s) from {settings.images[0].parent}"
    plot.rd_plot(everything, written["rd"], title)
    speed_markdown = None
    if settings.speed and settings.models:
        from informer_codec.bench import speed

        speed_markdown = speed.report_in_fresh_process(settings.images[0], settings.models)
        print(speed_markdown)
        written["speed"] = out / "speed.md"
        written["speed"].write_text(speed_markdown)
    tables = [report.points_table(c, *_sweep(c)) for c in measured]
    written["summary"] = out / "summary.md"
    page = report.summary(_context(settings, anchors, anchor), bd_markdown, tables, speed_markdown, out)
    written["summary"].write_text(page)
    print(f"informer bench: wrote {len(written)} files to {out} (summary: {written['summary']})")
    return written
