"""The command line the per-image bench tools share: IMAGE... --models --qualities."""

from __future__ import annotations

import argparse


def parse(doc: str) -> tuple[list[str], list[str], list[float]]:
    """(image paths, model names, qualities) from ``sys.argv``, with ``doc`` as the help text."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--qualities", default="0,50,100")
    parser.add_argument("--models", default="informer,mbt2018")
    args = parser.parse_args()
    return args.images, args.models.split(","), [float(q) for q in args.qualities.split(",")]
