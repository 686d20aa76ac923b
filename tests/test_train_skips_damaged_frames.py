"""Training skips a damaged frame of a dataset, as `DatasetBatches` promises ("skips unreadable
frames (counted)"): since the synthetic and Hypersim readers keep a declared frame whose file is
missing or damaged in their index (`ds[i]` raises a frame error, so that eval lists it), training
called `ds[i]` without catching it and `depthart train` stopped at the first such frame
("depthart train: error: .../rgb/000001.png is missing"); a PNG cut short stopped it before that
change too. Now a damaged frame is left out with one warning naming it and why, counted, and the
rest trained and validated on; only a set of which no frame is readable is an error, one line."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from depthart_core.cli import main
from depthart_core.data.benchmarks._io import BadFrameError
from depthart_core.data.sample import DepthSample
from depthart_core.data.synthetic.set import SyntheticSet
from depthart_core.training.config import DataConfig
from depthart_core.training.data import DatasetBatches, resize_sample, validation_batch

TINY_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_tokenizer.yaml"
COUNT = 5


@pytest.fixture
def clean_set(clean_synthetic_set) -> Path:
    return clean_synthetic_set


@pytest.fixture
def damaged(damaged_synthetic_set) -> Path:
    return damaged_synthetic_set


def _reasons(root: Path) -> dict[int, str]:
    return {
        1: f"{root / 'rgb' / '000001.png'} is missing",
        3: f"cannot decode depth PNG {root / 'depth' / '000003.png'}",
    }


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _frame_of(rgb: torch.Tensor, frames: dict[int, np.ndarray]) -> int:
    """Which frame of the set an item of a batch is (by its resized RGB)."""
    hwc = rgb.permute(1, 2, 0).numpy()
    hits = [i for i, ref in frames.items() if np.array_equal(hwc, ref)]
    assert len(hits) == 1, hits
    return hits[0]


def test_training_batches_skip_the_damaged_frames_counted_with_a_warning_each(damaged, caplog):
    ds = SyntheticSet(damaged)
    assert len(ds) == COUNT and ds.skipped == 0  # both damaged frames are in the index
    readable = {i: resize_sample(ds[i], 8)[0] for i in (0, 2, 4)}
    batches = DatasetBatches(ds, seed=0, size=8, batch=2)
    seen = set()
    with caplog.at_level(logging.WARNING):
        for step in range(3 * batches.steps_per_epoch):
            b = batches.batch_at(step)
            assert b["rgb"].shape == (2, 3, 8, 8)
            seen |= {_frame_of(rgb, readable) for rgb in b["rgb"]}
    assert seen == {0, 2, 4}
    assert batches.unreadable == _reasons(damaged) and batches.dropped == {1, 3}
    # one warning per damaged frame, naming it and why, however often its slot comes round
    assert sorted(_warnings(caplog)) == [
        f"training skips synthetic frame {i} (unreadable): {why}"
        for i, why in sorted(_reasons(damaged).items())
    ]
    again = DatasetBatches(SyntheticSet(damaged), seed=0, size=8, batch=2)
    assert torch.equal(again.batch_at(1)["rgb"], batches.batch_at(1)["rgb"])  # deterministic


def test_validation_leaves_out_the_damaged_frames_with_a_warning_each(damaged, caplog):
    cfg = DataConfig(source="synthetic_set", root=str(damaged), val_root=str(damaged))
    with caplog.at_level(logging.WARNING):
        batch = validation_batch(dataclasses.replace(cfg, val_count=COUNT), 8)
    assert batch["rgb"].shape[0] == COUNT - 2
    assert sorted(_warnings(caplog)) == [
        f"validation leaves out synthetic frame {i} (unreadable): {why}"
        for i, why in sorted(_reasons(damaged).items())
    ]
    # fewer frames asked for than the set holds: readable frames (the set's first not picked)
    # stand in for the damaged picks
    one = dataclasses.replace(cfg, val_count=3, val_seed=1)
    pick = np.random.default_rng(one.val_seed).choice(COUNT, size=3, replace=False)
    assert sorted(pick.tolist()) == [1, 2, 3]  # both damaged frames picked
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        batch = validation_batch(one, 8)
    ds = SyntheticSet(damaged)
    readable = {i: resize_sample(ds[i], 8)[0] for i in (0, 2, 4)}
    assert [_frame_of(rgb, readable) for rgb in batch["rgb"]] == [2, 0, 4]
    assert len(_warnings(caplog)) == 2


def test_a_set_of_which_no_frame_is_readable_is_one_line(clean_set, tmp_path):
    root = tmp_path / "none"
    shutil.copytree(clean_set, root)
    for i in range(COUNT):
        (root / "rgb" / f"{i:06d}.png").unlink()  # every frame keeps its depth: in the index
    first = f"{root / 'rgb' / '000000.png'} is missing"
    with pytest.raises(ValueError) as info:
        DatasetBatches(SyntheticSet(root), seed=0, size=8, batch=2).batch_at(0)
    assert str(info.value) == (
        f"dataset 'synthetic': none of its {COUNT} frames is readable (the first: {first})"
    )
    cfg = DataConfig(source="synthetic_set", root=str(root), val_root=str(root), val_count=2)
    with pytest.raises(ValueError) as info:
        validation_batch(cfg, 8)
    assert str(info.value) == (
        f"no validation frame of synthetic_set {root} is readable: none of its {COUNT} frames "
        f"(the first: {first})"
    )


class _HalfInvalid:
    """Frames 0 and 1 unreadable, 2 with half its pixels invalid."""

    name = "half"
    skipped = 0

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> DepthSample:
        if i < 2:
            raise BadFrameError(f"frame {i} is damaged")
        valid = np.zeros((4, 4), bool)
        valid[:2] = True
        depth = np.where(valid, 2.0, 0.0).astype(np.float32)
        return DepthSample(np.zeros((4, 4, 3), np.uint8), depth, valid, "half2")


def test_readable_frames_all_too_invalid_say_how_many_were_unreadable():
    batches = DatasetBatches(_HalfInvalid(), seed=0, size=4, batch=1, max_invalid_fraction=0.1)
    with pytest.raises(ValueError) as info:
        batches.batch_at(0)
    assert str(info.value) == (
        "dataset 'half': no frame has at most 10.000% invalid pixels (2 of its 3 unreadable)"
    )


def test_train_on_a_damaged_set_trains_on_the_rest(damaged, tmp_path, capsys, caplog):
    """The bug as met: `depthart train` on the set stopped with "depthart train: error:
    .../rgb/000001.png is missing"; it trains, and validates on the set's readable frames."""
    argv = ["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "r")]
    for setting in (
        "data.source=synthetic_set",
        f"data.root={damaged}",
        f"data.val_root={damaged}",
        f"data.val_count={COUNT}",
        "data.max_invalid_fraction=1.0",
        "steps=1",
        "batch_size=4",
    ):
        argv += ["--set", setting]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0, capsys.readouterr().err
    said = _warnings(caplog)
    for i, why in _reasons(damaged).items():  # the slots of one step of 4 of the 5 frames
        assert f"validation leaves out synthetic frame {i} (unreadable): {why}" in said
    assert set(said) & {f"training skips synthetic frame {i} (unreadable): {why}"
                        for i, why in _reasons(damaged).items()}  # fmt: skip
