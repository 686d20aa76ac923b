"""`replay --depth-range` scores the ground truth inside the range only, as `eval`'s readers do
(`BenchmarkDataset.range_mask`): GT beyond it used to stay valid and be scored against the
prediction clipped to the range's end (and drawn as the metric protocol's sparse cue), an error
the model did not make."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.evaluation.protocols import evaluate
from depthart_core.replay.frames import Frame, ReplayConfig, score_frame

RANGE = (0.1, 4.0)


def _scored(protocol: str, pred: np.ndarray, gt: np.ndarray) -> dict:
    cfg = ReplayConfig(image_topic="/i", depth_topic="/d", protocol=protocol, depth_range=RANGE)
    row = {"index": 0, "status": None}
    frame = Frame(index=0, image=None, gt=(gt, np.ones(gt.shape, bool)), camera_info=None)
    score_frame(row, pred, frame, cfg)
    return row


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 3.9, (40, 50)).astype(np.float32)
    pred = (gt * rng.uniform(0.95, 1.05, gt.shape)).astype(np.float32)
    gt[:, :15] = 50.0  # beyond the range (a sensor's far returns), the model says 3 m there
    pred[:, :15] = 3.0
    return pred, gt


def test_affine_scores_the_pixels_eval_scores():
    pred, gt = _scene()
    row = _scored("affine", pred, gt)
    assert row["status"] == "evaluated", row
    inside = (gt > RANGE[0]) & (gt <= RANGE[1])
    want = evaluate(pred, gt, inside, "affine", RANGE)["abs_rel"]
    assert row["metrics"]["abs_rel"] == pytest.approx(want, rel=1e-6)
    assert row["metrics"]["abs_rel"] < 0.05


def test_metric_neither_scores_nor_fits_to_gt_outside_the_range():
    pred, gt = _scene()
    row = _scored("metric", pred, gt)
    assert row["status"] == "evaluated", row
    assert row["metrics"]["abs_rel"] < 0.05  # with the far pixels it was about 0.3
    assert row["fit_scale"] == pytest.approx(1.0, abs=0.02)


def test_no_gt_inside_the_depth_range_is_a_rejected_frame():
    gt = np.full((10, 12), 9.0, np.float32)
    row = _scored("affine", gt.copy(), gt)
    assert row["status"] == "rejected", row
    assert row["reason"] == "no valid GT depth inside --depth-range (0.1, 4] m", row
