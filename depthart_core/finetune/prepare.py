"""Frames in the form the trainer and the evaluation take them.

Training and validation frames go to the model resolution exactly as inference resizes an
image (`runtime.preprocess`: area when shrinking, else bilinear, aspect ratio not kept); depth and
its mask go by nearest neighbour and keep the sensor's holes as invalid. The invalid pixels never
reach the targets as depth: the DepthART codec takes q98 over valid pixels only and fills each
hole with its nearest valid depth before tokenizing (`tokenizer.codec.encode_depth`), and the
trainer's validation scores valid pixels only. Held-out frames are also kept at the sensor's full
size for the before/after scores (`finetune.report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from depthart_core.finetune.frames import Frame
from depthart_core.runtime.preprocess import resize_image


@dataclass
class SmallFrame:
    """A frame at the model resolution: RGB, depth (0 where invalid) and the sensor's mask."""

    rgb: np.ndarray  # S x S x 3 uint8
    depth: np.ndarray  # S x S float32 metres
    valid: np.ndarray  # S x S bool


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """S x S as inference resizes an image (a frame shrinking along one side and growing along
    the other included: `runtime.preprocess.resize_image`)."""
    return resize_image(rgb, size, size)


def to_model_size(frame: Frame, size: int) -> SmallFrame | None:
    """The frame at S x S, or None when no valid depth pixel survives the resize."""
    # pixel centres, as the RGB's resize (`training.data.resize_sample`)
    d = cv2.resize(frame.depth, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
    v = cv2.resize(
        frame.valid.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST_EXACT
    )
    v = v.astype(bool) & (d > 0)
    if not v.any():
        return None
    return SmallFrame(resize_rgb(frame.rgb, size), np.where(v, d, 0).astype(np.float32), v)


def stack(frames: Sequence[SmallFrame]) -> dict[str, torch.Tensor]:
    """rgb (N, 3, S, S) uint8, depth (N, S, S) float32, valid (N, S, S) bool: a `FramePool`."""
    rgb = torch.from_numpy(np.stack([f.rgb for f in frames])).permute(0, 3, 1, 2).contiguous()
    return {
        "rgb": rgb,
        "depth": torch.from_numpy(np.stack([f.depth for f in frames])),
        "valid": torch.from_numpy(np.stack([f.valid for f in frames])),
    }


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread over range(n) (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    return np.linspace(0, n - 1, k).round().astype(int).tolist()
