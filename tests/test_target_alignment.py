"""Depth targets stay on the RGB's pixel grid when resized to the model size: the RGB resize
(INTER_AREA / INTER_CUBIC) works about pixel centres, and so must the depth's nearest neighbour
(OpenCV's INTER_NEAREST takes floor(dst * scale): the target sat 0.4 model pixels up-left of its
image at 2.5x). Training (`resize_sample`) and evaluation at `--eval-size` (`_resize_for_eval`);
fine-tuning's `to_model_size` and depth mapping made the same change."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.data.sample import DepthSample
from depthart_core.evaluation.runner import _resize_for_eval
from depthart_core.training.data import resize_sample


def _ramps(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A column ramp and a row ramp, in source pixels (the value is the pixel's coordinate)."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return u, v


@pytest.mark.parametrize("h, w, size", [(160, 160, 64), (256, 256, 64), (96, 96, 64)])
def test_training_targets_sit_on_the_rgb_grid(h, w, size):
    u, v = _ramps(h, w)
    rgb = np.stack([u, v, u], -1).astype(np.uint8)  # each pixel's own column and row (w <= 256)
    ones = np.ones((h, w), bool)
    for axis, ramp in ((0, u), (1, v)):
        sample = DepthSample(rgb=rgb, depth=ramp + 1.0, valid=ones, name="ramp")
        rgb_s, depth_s, _ = resize_sample(sample, size)
        seen_by_rgb = rgb_s[..., axis].astype(np.float32)  # where each RGB pixel looks
        offset = float(np.mean((depth_s - 1.0) - seen_by_rgb))
        # on the grid (INTER_NEAREST: -0.5 / -1.0 / -2.0 source px at 1.5x / 2.5x / 4x)
        assert abs(offset) <= 0.25, (axis, offset)


def test_eval_size_keeps_gt_on_the_predictions_grid():
    u, _ = _ramps(240, 240)
    pred, gt, _ = _resize_for_eval(u + 1.0, u + 1.0, np.ones((240, 240), bool), 96)
    assert abs(float(np.mean(pred - gt))) < 0.3, float(np.mean(pred - gt))
