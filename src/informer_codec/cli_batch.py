"""Batches for ``informer encode/decode``: the per-file work, a process pool, a progress bar, shards.

The per-file functions live at module level, with their options in small
frozen dataclasses, so that a worker process can receive them by pickling. The
parent reads no pixels in pool mode: it only checks pairs, hands them out and
prints what comes back, so every message is printed by one process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import click

from informer_codec.cli_io import read_input, same_file, write_output
from informer_codec.errors import InformerError


@dataclass(frozen=True)
class EncodeSettings:
    model: str
    quality: float
    strip: bool
    max_pixels: int
    device: str
    refine: int = 0


@dataclass(frozen=True)
class DecodeSettings:
    max_pixels: int
    device: str


def encode_file(settings: EncodeSettings, source: str, target: str) -> dict:
    """Encode one image file; returns the fields of its summary line."""
    from informer_codec import codec, images

    image = images.load(read_input(source), settings.max_pixels)
    metadata = None if settings.strip else image.metadata
    result = codec.encode(image.pixels, model=settings.model, quality=settings.quality,
                          device=settings.device, metadata=metadata, refine=settings.refine)
    write_output(target, result.data)
    pixels = result.width * result.height
    return {"width": result.width, "height": result.height, "bytes": len(result.data),
            "bpp": len(result.data) * 8 / pixels, "seconds": result.seconds,
            "model": settings.model, "quality": settings.quality, "notices": image.notices}


def decode_file(settings: DecodeSettings, source: str, target: str) -> dict:
    """Decode one .inf file into the image format of ``target``; returns its summary fields."""
    from informer_codec import codec, container, images

    fmt = images.output_format(target)
    data = read_input(source)
    limits = container.Limits(max_pixels=settings.max_pixels)
    result = codec.decode(data, device=settings.device, limits=limits)
    notices: list[str] = []
    write_output(target, images.encode_image(result.pixels, fmt, result.metadata, notices))
    h = result.header
    return {"width": h.width, "height": h.height, "bytes": len(data),
            "bpp": len(data) * 8 / (h.width * h.height), "seconds": result.seconds,
            "model": h.model, "quality": h.quality, "notices": notices}


def attempt(work, source: str, target: str) -> dict | InformerError:
    """``work(source, target)``, or the user-facing error it raised, returned as a value so that a
    worker process hands it back like a result (other exceptions are bugs and propagate)."""
    try:
        if same_file(source, target):
            raise InformerError("output would overwrite the input")
        return work(source, target)
    except InformerError as exc:
        return exc


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) with 0 <= I < N; a ValueError says what is wrong."""
    if text is None:
        return None
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"'{text}' is not I/N (e.g. 0/4)") from None
    if not 0 <= i < n:
        raise ValueError(f"'{text}': need 0 <= I < N")
    return i, n


def select_shard(pairs: list[tuple[str, str]], shard: tuple[int, int] | None) -> list[tuple[str, str]]:
    """The pairs whose input index in the argument list is I mod N: N machines given the same list
    and shards 0/N ... N-1/N process every input exactly once, with no coordination."""
    if shard is None:
        return pairs
    i, n = shard
    return [pair for k, pair in enumerate(pairs) if k % n == i]


def threads_per_process(threads: int, jobs: int) -> int:
    """``--threads``, or else an even share of the cores among the ``jobs`` processes.

    Processes that together run more threads than there are cores slow down far
    more than their share: with two busy processes on this 2-core machine, one
    Kodak decode took 11.0 s with 2 torch threads and 3.1 s with 1.
    """
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def _init_worker(threads: int) -> None:
    """Give this process its torch thread count (see :func:`threads_per_process`)."""
    import torch

    torch.set_num_threads(threads)


class Batch:
    """Processes each (input, output) pair, reports it, and remembers failures.

    With ``jobs`` > 1 and several pairs, files go to a pool of spawned worker
    processes ('spawn': safe whatever threads or CUDA context the parent has) and
    are reported as they finish. A failed file costs one line on stderr; the
    others go on, and the exit status is 1 at the end.
    """

    def __init__(self, quiet: bool, as_json: bool, pairs: list[tuple[str, str]], jobs: int = 1,
                 progress: bool | None = None, threads: int = 0):
        if as_json and any(out == "-" for _, out in pairs):
            raise click.UsageError("--json cannot be combined with output to stdout ('-')")
        for _, out in pairs:
            if out == "-" and sys.stdout.isatty():
                raise click.UsageError("refusing to write binary data to a terminal; redirect stdout")
        self.quiet, self.as_json, self.pairs, self.failed = quiet, as_json, pairs, 0
        self.jobs = min(jobs, len(pairs)) if pairs else 1
        self.threads = threads  # 0: torch's default in this process, cores/JOBS in workers
        if progress is None:  # by default only for several files on a terminal
            progress = len(pairs) > 1 and not quiet and sys.stderr.isatty()
        self.progress, self.bar = progress, None

    def each(self, work) -> None:
        """Run picklable ``work(source, target) -> dict`` on every pair; exit 1 if any failed."""
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=len(self.pairs), unit="file", file=sys.stderr, dynamic_ncols=True)
        try:
            if self.jobs > 1:
                self._in_pool(work)
            else:
                if self.threads:
                    _init_worker(self.threads)
                for source, target in self.pairs:
                    self._record(source, target, attempt(work, source, target))
        finally:
            if self.bar is not None:
                self.bar.close()
        if self.failed:
            raise SystemExit(1)

    def _in_pool(self, work) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = threads_per_process(self.threads, self.jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(attempt, work, s, t): (s, t) for s, t in self.pairs}
            try:
                for future in as_completed(futures):
                    self._record(*futures[future], _outcome(future))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C or a bug: start nothing new
                raise

    def _record(self, source: str, target: str, outcome: dict | InformerError) -> None:
        if isinstance(outcome, InformerError):
            self.failed += 1
            self._say(f"informer: {source}: {outcome}", err=True)
        else:
            self.report(source, target, outcome)
        if self.bar is not None:
            self.bar.update()

    def _say(self, line: str, err: bool) -> None:
        """Print a line, above the progress bar when there is one."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr if err else sys.stdout)
        else:
            click.echo(line, err=err)

    def report(self, source: str, target: str, fields: dict) -> None:
        import json

        for notice in fields.pop("notices", []):
            if not self.quiet:
                self._say(f"informer: note: {source}: {notice}", err=True)
        if self.as_json:
            self._say(json.dumps({"input": source, "output": target} | fields), err=False)
        elif not self.quiet:
            self._say(
                f"{source} -> {target}: {fields['width']}x{fields['height']}, {fields['bytes']} bytes, "
                f"{fields['bpp']:.4f} bpp, {fields['seconds']:.2f} s",
                err=True,
            )


def _outcome(future) -> dict | InformerError:
    """A worker's result; a worker that died (killed, out of memory) fails its file, not the batch."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        return InformerError("worker process died (out of memory?)")
