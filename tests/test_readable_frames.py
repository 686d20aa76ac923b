"""The scripts under training/ that read a rendered set frame by frame skip a damaged frame.

Since the synthetic and Hypersim readers keep a frame whose file is missing or damaged in their
index (`ds[i]` raises a frame error, so that `depthart eval` lists it as unreadable), those
scripts, which called `ds[i]` for every frame, stopped with a traceback at the first such frame
(`uncertainty_head.py --train-root SET` with SET/depth/000002.png removed: FileNotFoundError)
where they used to skip it. `BenchmarkDataset.readable` yields the frames that can be read, with
one warning naming each one that cannot and why, counted in `unreadable_read`; the scripts read
through it and say how many frames they skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set

COUNT = 5


@pytest.fixture
def clean_set(clean_synthetic_set) -> Path:
    return clean_synthetic_set


@pytest.fixture
def damaged(damaged_synthetic_set) -> Path:
    return damaged_synthetic_set


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _same(a, b) -> bool:
    return a.name == b.name and all(
        np.array_equal(getattr(a, k), getattr(b, k)) for k in ("rgb", "depth", "valid")
    )


def test_readable_skips_the_damaged_frames_with_a_warning_each(damaged, clean_set, caplog):
    ds, clean = SyntheticSet(damaged), SyntheticSet(clean_set)
    assert len(ds) == COUNT  # both damaged frames are in the index
    with caplog.at_level(logging.WARNING):
        got = list(ds.readable())
    assert [i for i, _ in got] == [0, 2, 4]
    assert all(_same(s, clean[i]) for i, s in got)
    assert sorted(ds.unreadable_read) == [1, 3]
    assert ds.unreadable_read[1] == f"{damaged / 'rgb' / '000001.png'} is missing"
    assert ds.unreadable_read[3] == f"cannot decode depth PNG {damaged / 'depth' / '000003.png'}"
    warnings = _warnings(caplog)
    assert warnings == [
        f"synthetic: skipped frame {i} (unreadable): {ds.unreadable_read[i]}" for i in (1, 3)
    ]


def test_readable_keeps_the_order_given_and_counts_over_passes(damaged, caplog):
    ds = SyntheticSet(damaged)
    frames = ds.readable([4, 3, 0])
    assert ds.unreadable_read == {}  # there before the first frame is read
    with caplog.at_level(logging.WARNING):
        assert [i for i, _ in frames] == [4, 0]
        assert [i for i, _ in ds.readable(range(1, 3))] == [2]
    assert sorted(ds.unreadable_read) == [1, 3]
    assert len(_warnings(caplog)) == 2


def test_readable_on_an_undamaged_set_is_every_frame_in_order(clean_set, caplog):
    ds = SyntheticSet(clean_set)
    with caplog.at_level(logging.WARNING):
        got = list(ds.readable())
    assert [i for i, _ in got] == list(range(COUNT))
    assert all(_same(s, ds[i]) for i, s in got)
    assert ds.unreadable_read == {} and _warnings(caplog) == []


def test_uncertainty_head_trains_on_a_set_with_a_missing_depth_png(
    tmp_path, tiny_checkpoint, training_script, capsys
):
    """The review's repro: a 6-frame set, SET/depth/000002.png removed; the script stopped with
    a FileNotFoundError traceback. Now it trains on the other 5 and says it skipped one."""
    from depthart_core.checkpoint import load_checkpoint

    root = tmp_path / "set"
    write_synthetic_set(root, count=6, seed=5, size=(64, 64), progress=False)
    (root / "depth" / "000002.png").unlink()
    out = tmp_path / "headed.safetensors"
    args = ["--train-root", str(root), "--checkpoint", tiny_checkpoint, "--out", str(out)]
    code = training_script("uncertainty_head").main([*args, "--steps", "2", "--batch", "2"])
    assert code == 0
    printed = capsys.readouterr()
    assert f"{root}: 1 of 6 frames unreadable, skipped" in printed.out
    assert "5 frames (1 held out)" in printed.out
    _, info = load_checkpoint(str(out))
    meta = info["metadata"]["uncertainty_head"]
    assert meta["frames"] + meta["held_out_frames"] == 5


def test_uncertainty_eval_load_takes_the_next_frames_in_place_of_damaged_ones(
    damaged, clean_set, training_script, capsys
):
    ue = training_script("uncertainty_eval")
    clean = SyntheticSet(clean_set)
    frames = ue.load(str(damaged), 3)  # frames 0, 2 and 4: the next ones stand in
    assert len(frames) == 3
    for (rgb, depth, valid), i in zip(frames, (0, 2, 4), strict=True):
        assert np.array_equal(rgb, clean[i].rgb) and np.array_equal(depth, clean[i].depth)
        assert np.array_equal(valid, clean[i].valid)
    assert "2 unreadable frame(s) skipped" in capsys.readouterr().out
    assert len(ue.load(str(damaged), 5)) == 3  # fewer than --count: those there are
    assert "3 of --count 5" in capsys.readouterr().out
    # undamaged: the first `count` frames, as before
    first = ue.load(str(clean_set), 3)
    assert all(np.array_equal(f[1], clean[i].depth) for i, f in enumerate(first))


def test_decoder_finetune_reads_around_damaged_frames(damaged, training_script, capsys):
    df = training_script("decoder_finetune")
    d, v, rgb = df.read_frames([str(damaged)], [], 16)
    assert d.shape == (3, 16, 16) and v.shape == (3, 16, 16) and rgb.shape == (3, 3, 16, 16)
    assert "2 of 5 frames unreadable, skipped" in capsys.readouterr().out


def test_sweep_eval_inputs_skip_damaged_frames(damaged, tiny_checkpoint, training_script, capsys):
    from depthart_core.runtime.torch_backend import DepthEstimator

    sweep = training_script("uncertainty_head_sweep")
    est = DepthEstimator.from_checkpoint(tiny_checkpoint)
    ev = sweep.eval_inputs(est, str(damaged), batch=2)
    assert len(ev["feat"]) == len(ev["errors"]) == len(ev["geos"]) == 3
    assert "2 of 5 frames unreadable, skipped" in capsys.readouterr().out


def test_diagnostics_read_around_damaged_frames(damaged, tiny_checkpoint, training_script, capsys):
    diag = training_script("diagnostics")
    diag.ceiling(tiny_checkpoint, str(damaged))
    printed = capsys.readouterr().out
    assert "2 unreadable frame(s) skipped" in printed and "ceiling on 3 frames" in printed
    names = [s.name for s in diag._readable_samples(str(damaged), 2)]
    assert names == ["synth_3_000000", "synth_3_000002"]
