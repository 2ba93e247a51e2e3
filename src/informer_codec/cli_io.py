"""File plumbing for the CLI: '-' for stdin/stdout, atomic writes, per-file outcomes."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from informer_codec.errors import InputError


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("no such file") from None
    except IsADirectoryError:
        raise InputError("is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})") from None


def write_output(path: str, data: bytes) -> None:
    """Write all of ``data`` or nothing: a temp file in the same folder, then a rename."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                   prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {path} ({exc.strerror})") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def same_file(a: str, b: str) -> bool:
    if "-" in (a, b):
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def plan_outputs(paths: tuple[str, ...], out_dir: str | None, suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs: ``IN OUT``, or every path an input when --out-dir is given."""
    import click

    if out_dir is None:
        if len(paths) != 2:
            raise click.UsageError("give INPUT OUTPUT, or several inputs with -o/--out-dir DIR")
        return [(paths[0], paths[1])]
    if "-" in paths:
        raise click.UsageError("'-' (stdin) cannot be combined with --out-dir")
    folder = Path(out_dir)
    if not folder.is_dir():
        raise click.UsageError(f"--out-dir {out_dir} is not a directory")
    return [(p, str(folder / (Path(p).stem + suffix))) for p in paths]
