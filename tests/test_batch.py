"""Batches: a process pool (--jobs), shards (--shard I/N), a progress bar; one bad file fails alone."""

from __future__ import annotations

import json
import os
import pickle
from functools import partial

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import random_image, run_cli
from informer_codec.cli import main
from informer_codec.cli_batch import (
    Batch,
    DecodeSettings,
    EncodeSettings,
    decode_file,
    encode_file,
    parse_shard,
    select_shard,
)


@pytest.fixture()
def inputs(tmp_path):
    """Three small images, and an output folder."""
    paths = []
    for i, name in enumerate("abc"):
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(random_image(24 + 8 * i, 40, seed=i)).save(paths[-1])
    (tmp_path / "out").mkdir()
    return paths


def test_a_pool_reports_one_failure_and_finishes_the_rest(tiny_weights, inputs, tmp_path):
    inputs[1].write_bytes(b"this is not an image")
    out = tmp_path / "out"
    result = run_cli("encode", *inputs, "-o", out, "--jobs", "2", "--quiet", "--model", "mbt2018")
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["a.inf", "c.inf"]
    assert len(err) == 1 and "b.png" in err[0] and "not an image" in err[0], err


def test_shard_picks_every_nth_input_and_shows_progress_when_asked(tiny_weights, inputs, tmp_path):
    out = tmp_path / "out"
    result = run_cli("encode", *inputs, "-o", out, "--shard", "1/2", "--json", "--progress", "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert [json.loads(line)["input"] for line in result.stdout.decode().splitlines()] == [str(inputs[1])]
    assert [p.name for p in out.iterdir()] == ["b.inf"]
    assert "1/1" in result.stderr.decode()  # the tqdm bar, forced on although stderr is a pipe


def test_shard_selection_and_its_usage_errors(tmp_path):
    pairs = [(f"{k}.png", f"{k}.inf") for k in range(7)]
    shares = [select_shard(pairs, parse_shard(f"{i}/3")) for i in range(3)]
    assert [len(s) for s in shares] == [3, 2, 2] and sorted(sum(shares, [])) == sorted(pairs)
    assert shares[1] == [pairs[1], pairs[4]] and select_shard(pairs, None) == pairs
    for bad in ("2/2", "-1/2", "0/0", "1", "a/b", "1/2/3"):
        result = CliRunner().invoke(main, ["encode", "x.png", "-o", str(tmp_path), "--shard", bad])
        assert result.exit_code == 2, (bad, result.output)
    for bad in (["--jobs", "0"], ["--threads", "-1"]):
        assert CliRunner().invoke(main, ["decode", "x.inf", "-o", str(tmp_path), *bad]).exit_code == 2


def _threads_used(source: str, target: str) -> dict:
    import torch

    return {"threads": torch.get_num_threads()}


HALF_THE_CORES = max(1, (os.cpu_count() or 1) // 2)


@pytest.mark.parametrize("jobs, threads, expected", [(1, 1, 1), (2, 1, 1), (2, 0, HALF_THE_CORES)])
def test_threads_sets_the_torch_threads_of_each_process(capsys, jobs, threads, expected):
    import torch

    before = torch.get_num_threads()
    try:
        Batch(True, True, [("a", "x"), ("b", "y")], jobs=jobs, threads=threads).each(_threads_used)
    finally:
        torch.set_num_threads(before)
    reported = [json.loads(line)["threads"] for line in capsys.readouterr().out.splitlines()]
    assert reported == [expected, expected]


def test_per_file_work_pickles_for_worker_processes():
    for work in (partial(encode_file, EncodeSettings("informer", 50.0, False, 0, "cpu")),
                 partial(decode_file, DecodeSettings(0, "cpu"))):
        assert pickle.loads(pickle.dumps(work)).args == work.args
