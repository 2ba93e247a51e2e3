"""summary.md: the bench's outputs in one page, stamped with the date and the commit measured."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

from informer_codec.bench.results import Curve


def git_revision(out: Path | None = None) -> str:
    """`git rev-parse --short HEAD` of the code measured, marked when tracked files differ from it.

    The bench's own output folder (``out``, tracked when it is docs/bench) does not count.
    """
    here = Path(__file__).resolve().parent
    exclude = [f":(exclude){out.resolve()}"] if out is not None else []
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ":/", *exclude], cwd=here,
                               capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} (with uncommitted changes)" if dirty else head


def _cell(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def points_table(curve: Curve, params: list, param_name: str) -> str:
    """Every operating point of one measured curve."""
    lines = [f"**{curve.name}**: {curve.description}", "",
             f"| {param_name} | bpp | PSNR-RGB (dB) | MS-SSIM | encode (s) | decode (s) |",
             "|---|---|---|---|---|---|"]
    for i, param in enumerate(params):
        lines.append(f"| {param:g} | {_cell(curve.bpp[i], 4)} | {_cell(curve.psnr[i], 2)} | "
                     f"{_cell(curve.ms_ssim[i], 4)} | {_cell(curve.encoding_time[i], 3)} | "
                     f"{_cell(curve.decoding_time[i], 3)} |")
    return "\n".join(lines) + "\n"


def summary(context: list[str], bd_markdown: str, point_tables: list[str], speed_markdown: str | None,
            out: Path | None = None) -> str:
    """Combine the sections; ``context`` is a list of bullet lines describing the run."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# informer bench", "",
        f"- date: {now}",
        f"- commit: {git_revision(out)}",
        *[f"- {line}" for line in context], "",
        "## Rate-distortion", "",
        "![RD curves: PSNR and MS-SSIM against bpp](rd.png)", "",
        bd_markdown, "",
        "## Operating points (means over the images)", "",
        "\n".join(point_tables), "",
        "## Speed", "",
        speed_markdown if speed_markdown is not None else "Skipped (`--no-speed`).\n",
    ]
    return "\n".join(parts)
