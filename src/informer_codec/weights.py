"""Find, verify and load weights by model name.

Search order: ``$INFORMER_WEIGHTS_DIR``, the weights packaged inside an
installed wheel, then the repository's ``weights/`` beside an editable install.
Shipped files must match the sha256 recorded in ``weights_manifest.json``; a
directory given by the environment variable holds the user's own weights and is
trusted as it is. Every container records the digest of the weights that made
it, and decoding refuses a file whose digest differs from the loaded weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from informer_codec.errors import WeightsError

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "weights_manifest.json"
WEIGHTS_FORMAT = 1
DERIVED_BUFFERS = {"context.conv.mask"}  # rebuilt by the model's constructor; not stored


def weights_dirs() -> list[Path]:
    """Candidate folders, most specific first."""
    dirs = []
    if os.environ.get("INFORMER_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["INFORMER_WEIGHTS_DIR"]))
    dirs += [PACKAGE_DIR / "weights", PACKAGE_DIR.parent.parent / "weights"]
    return dirs


def weights_path(model: str) -> Path:
    for folder in weights_dirs():
        candidate = folder / f"{model}.pt"
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in weights_dirs())
    raise WeightsError(f"no weights for model '{model}' (looked in {searched})")


def file_digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def _check_shipped(model: str, path: Path, digest: bytes) -> None:
    if os.environ.get("INFORMER_WEIGHTS_DIR"):
        return
    expected = _manifest().get(model)
    if expected is not None and expected != digest.hex():
        raise WeightsError(f"weights file {path} is damaged: sha256 differs from the shipped one")


@lru_cache(maxsize=4)
def load(model: str, device: str = "cpu"):
    """(model ready to code, sha256 digest of its weights file)."""
    path = weights_path(model)
    digest = file_digest(path)
    _check_shipped(model, path, digest)
    return load_file(path, device), digest


def load_file(path: Path, device: str = "cpu"):
    """Rebuild a frozen model from a weights file written by :func:`save_file`."""
    import torch

    from informer_codec.models import ModelConfig, build_model

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        config = ModelConfig(**blob["config"])
        state = blob["state_dict"]
    except Exception:  # a truncated or foreign file; torch's own message runs over many lines
        raise WeightsError(f"cannot read weights file {path}: damaged, or not a weights file") from None
    if blob.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"weights file {path} has an unknown format")
    model = build_model(config)
    _add_tables(model, state)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - DERIVED_BUFFERS:
        raise WeightsError(f"weights file {path} does not match model '{config.name}'")
    model.eval()
    model.use_fast_layout()
    return model.to(device)


def _add_tables(model, state: dict) -> None:
    from informer_codec.models.tables import FactorizedTables

    names = {key.split(".")[1] for key in state if key.startswith("tables.")}
    for name in sorted(names):
        tables = FactorizedTables()
        tables.resize_like(state, f"tables.{name}.")
        model.tables[name] = tables


def save_file(model, path: Path) -> bytes:
    """Freeze ``model`` and write it compactly (fp16 parameters); returns the file's sha256.

    Buffers keep their dtype: some (GDN's pedestal) underflow in fp16.
    """
    import torch

    model.freeze()
    params = {name for name, _ in model.named_parameters()}
    state = {
        k: v.half() if k in params else v
        for k, v in model.state_dict().items()
        if k not in DERIVED_BUFFERS
    }
    blob = {"format": WEIGHTS_FORMAT, "config": asdict(model.config), "state_dict": state}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return file_digest(path)


def record_shipped(model: str, digest: bytes) -> None:
    """Record a newly exported shipped weights file's digest in the package manifest."""
    manifest = _manifest()
    manifest[model] = digest.hex()
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
