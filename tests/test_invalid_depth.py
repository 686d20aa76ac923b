"""Invalid ground truth: inpainted for the tokenizer target, and frames with too much of it dropped.

Before the fix, invalid pixels (Hypersim NaN: windows, sky) entered the tokenizer as depth 0, i.e.
"nearest" (-1), and every frame was trained on whatever its invalid share.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthart_core.data.sample import DepthSample
from depthart_core.tokenizer.codec import encode_depth, inpaint_nearest
from depthart_core.training.config import DataConfig
from depthart_core.training.data import DatasetBatches


def test_invalid_pixels_take_the_nearest_valid_depth():
    d = torch.full((1, 6, 8), 2.0)
    d[0, :, 4:] = 9.0  # a far wall on the right
    d[0, 2:4, 6:8] = float("nan")  # a window in it: Hypersim NaN
    d[0, 4, 1] = 0.0  # a zero hole in the near part
    x, scale = encode_depth(d)
    far = 9.0 / (float(scale) + 1e-7) * 2 - 1
    near = 2.0 / (float(scale) + 1e-7) * 2 - 1
    assert torch.allclose(x[0, :, 2:4, 6:8], torch.tensor(far).clamp(-1, 1))
    assert torch.allclose(x[0, :, 4, 1], torch.tensor(near))
    assert x.min() > -1.0 + 1e-3  # nothing is encoded as zero depth any more


def test_inpaint_is_the_exact_euclidean_nearest():
    rng = np.random.default_rng(0)
    depth = torch.from_numpy(rng.uniform(1, 10, (2, 9, 11)).astype(np.float32))
    valid = torch.from_numpy(rng.random((2, 9, 11)) > 0.6)
    out = inpaint_nearest(depth, valid)
    for b in range(2):
        vy, vx = np.nonzero(valid[b].numpy())
        for y, x in zip(*np.nonzero(~valid[b].numpy()), strict=True):
            d2 = (vy - y) ** 2 + (vx - x) ** 2
            candidates = depth[b].numpy()[vy[d2 == d2.min()], vx[d2 == d2.min()]]
            assert float(out[b, y, x]) in candidates.tolist()
    assert torch.equal(out[valid], depth[valid])


class _Frames:
    name = "frames"
    skipped = 0

    def __init__(self, invalid_share: list[float]) -> None:
        self.share = invalid_share

    def __len__(self) -> int:
        return len(self.share)

    def __getitem__(self, i: int) -> DepthSample:
        h, w = 16, 16
        valid = np.ones((h, w), bool)
        valid.flat[: int(self.share[i] * h * w)] = False
        depth = np.where(valid, 1.0 + i, np.nan).astype(np.float32)
        rgb = np.full((h, w, 3), i, np.uint8)  # the frame index, to see which frame was used
        return DepthSample(rgb, depth, valid, f"frame{i}")


def test_frames_with_too_many_invalid_pixels_are_dropped():
    shares = [0.0, 0.5, 0.0, 0.004, 0.0, 0.9]
    batches = DatasetBatches(_Frames(shares), seed=0, size=8, batch=2, max_invalid_fraction=0.01)
    seen = set()
    for step in range(3 * batches.steps_per_epoch):
        b = batches.batch_at(step)
        seen |= set(b["rgb"][:, 0, 0, 0].tolist())
        assert b["valid"].float().mean() > 0.99
    assert seen == {0, 2, 3, 4} and batches.dropped == {1, 5}
    again = DatasetBatches(_Frames(shares), seed=0, size=8, batch=2, max_invalid_fraction=0.01)
    assert torch.equal(again.batch_at(4)["rgb"], batches.batch_at(4)["rgb"])  # deterministic
    with pytest.raises(ValueError, match="no frame has at most"):
        DatasetBatches(_Frames([0.5]), 0, 8, 1, max_invalid_fraction=0.01).batch_at(0)


def test_default_threshold_is_the_authors_hypersim_rule():
    assert DataConfig().max_invalid_fraction == pytest.approx(1000 / (1024 * 768))
