"""Frames in the form the trainer and the evaluation take them.

Training frames go to the model resolution exactly as inference resizes an image
(`runtime.preprocess`: area when shrinking, else bilinear, aspect ratio not kept); depth and its
mask go by nearest neighbour. The sensor's holes are then filled with the depth of their nearest
valid pixel (`fill_holes`) and the whole frame is marked valid: the DepthART codec would
otherwise encode a hole as zero depth (`tokenizer.codec.encode_depth`), and the token targets
would teach the model to predict holes. The q98 normalisation sees the filled map. Held-out
frames stay at the sensor's full size with the sensor's own mask: they are scored only where the
sensor measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from depthart_core.finetune.frames import Frame


def fill_holes(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each invalid pixel takes the depth of its nearest valid pixel (L2). Needs one valid."""
    if valid.all():
        return depth.astype(np.float32, copy=True)
    if not valid.any():
        raise ValueError("cannot fill a depth map without any valid pixel")
    holes = (~valid).astype(np.uint8)  # distance to the nearest zero, i.e. valid, pixel
    _, labels = cv2.distanceTransformWithLabels(
        holes, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(valid)
    # labels number the zero (valid) pixels 1..n in row-major order, the order np.nonzero gives
    by_label = np.zeros(len(ys) + 1, dtype=np.float32)
    by_label[1:] = depth[ys, xs]
    return np.where(valid, depth, by_label[labels]).astype(np.float32)


def _resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    shrink = size < rgb.shape[0] or size < rgb.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


@dataclass
class SmallFrame:
    """A frame at the model resolution: RGB, hole-filled depth and the sensor's own mask."""

    rgb: np.ndarray  # S x S x 3 uint8
    depth: np.ndarray  # S x S float32, holes filled
    sensor_valid: np.ndarray  # S x S bool


def to_model_size(frame: Frame, size: int) -> SmallFrame | None:
    """The frame at S x S, or None when no valid depth pixel survives the resize."""
    d = cv2.resize(frame.depth, (size, size), interpolation=cv2.INTER_NEAREST)
    v = cv2.resize(frame.valid.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    v = v.astype(bool) & (d > 0)
    if not v.any():
        return None
    return SmallFrame(_resize_rgb(frame.rgb, size), fill_holes(d, v), v)


def stack(frames: Sequence[SmallFrame], training: bool) -> dict[str, torch.Tensor]:
    """rgb (N, 3, S, S) uint8 and depth (N, S, S) float32; `valid` (N, S, S) is all True for
    training (the holes are filled) and the sensor's mask for validation."""
    rgb = torch.from_numpy(np.stack([f.rgb for f in frames])).permute(0, 3, 1, 2).contiguous()
    depth = torch.from_numpy(np.stack([f.depth for f in frames]))
    if training:
        valid = torch.ones(depth.shape, dtype=torch.bool)
    else:
        valid = torch.from_numpy(np.stack([f.sensor_valid for f in frames]))
    return {"rgb": rgb, "depth": depth, "valid": valid}


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread over range(n) (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    return np.linspace(0, n - 1, k).round().astype(int).tolist()
