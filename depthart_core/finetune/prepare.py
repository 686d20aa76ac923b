"""Frames in the form the trainer and the evaluation take them.

Training and validation frames go to the model resolution exactly as inference resizes an
image (`runtime.preprocess`: area when shrinking, else bilinear, aspect ratio not kept); depth and
its mask go by nearest neighbour and keep the sensor's holes as invalid. The invalid pixels never
reach the targets as depth: the DepthART codec takes q98 over valid pixels only and fills each
hole with its nearest valid depth before tokenizing (`tokenizer.codec.encode_depth`), and the
trainer's validation scores valid pixels only. Held-out frames are also kept at the sensor's full
size for the before/after scores (`finetune.report`).

Every kept frame stays in memory at the model resolution until the frame files are written; a
long recording can outgrow the machine (`memory_warning`: `finetune --stride` keeps fewer).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


# RAM a frame kept at the model's size takes while the bags are read, over its arrays' 8 bytes a
# pixel: a scale probe measured about 55 KB a frame at 64 px (32.8 KB of arrays; the rest is
# each frame's objects and the copy `stack` makes while the frame files are written)
MEMORY_MARGIN = 1.68


def frame_bytes(size: int) -> int:
    """Bytes of RAM one frame kept at the model's size S takes: S x S x 3 uint8 RGB, S x S
    float32 depth and S x S bool mask, times `MEMORY_MARGIN` (about 55 KB at 64 px)."""
    return math.ceil((3 + 4 + 1) * size * size * MEMORY_MARGIN)


# Linux: what a new process can get without swapping (free memory and the page cache it can
# reclaim); sysconf's available pages are only the free ones (the page cache that reading the
# bags fills is not counted there)
MEMINFO = Path("/proc/meminfo")


def available_memory() -> int | None:
    """Bytes of memory available now: Linux's MemAvailable (`MEMINFO`), else sysconf's free
    physical pages, or None where the system says neither."""
    try:
        for line in MEMINFO.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # "MemAvailable:  123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    names = getattr(os, "sysconf_names", {})
    if "SC_AVPHYS_PAGES" not in names or "SC_PAGE_SIZE" not in names:
        return None
    try:
        pages, page = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
    return pages * page if pages > 0 and page > 0 else None


def kept_images(images: Sequence[int], stride: int) -> int:
    """How many images every `stride`-th image of bags of `images` images each keeps."""
    return sum(-(-n // stride) for n in images)


def _amount(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def memory_warning(
    images: Sequence[int], stride: int, size: int, available: int | None
) -> str | None:
    """One line when the frames that `stride` keeps of bags of `images` images each would take,
    at the model's size, more than half of `available` bytes: the estimate and the smallest
    --stride that would fit. None when they fit or `available` is unknown."""
    if not available:
        return None
    per, budget = frame_bytes(size), available / 2
    kept = kept_images(images, stride)
    if kept * per <= budget:
        return None
    longest = max(images)
    fit = max(stride + 1, math.ceil(sum(images) * per / budget))
    while fit < longest and kept_images(images, fit) * per > budget:
        fit += 1
    fits = kept_images(images, fit) * per <= budget
    advice = (
        f"--stride {fit} would keep {kept_images(images, fit)} frames (about "
        f"{_amount(kept_images(images, fit) * per)})"
        if fits
        else f"no --stride fits {len(images)} bags; give fewer"
    )
    return (
        f"keeping {kept} of {sum(images)} images (--stride {stride}) at the model's {size} px "
        f"takes about {_amount(kept * per)} of memory ({per / 1000:.0f} KB a frame), more than "
        f"half of the {_amount(available)} available: {advice}"
    )
