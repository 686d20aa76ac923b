"""Frames in the form the trainer and the evaluation take them.

Training and validation frames go to the model resolution exactly as inference resizes an
image (`runtime.preprocess`: area when shrinking, else bilinear, aspect ratio not kept); depth and
its mask go by nearest neighbour and keep the sensor's holes as invalid. The invalid pixels never
reach the targets as depth: the DepthART codec takes q98 over valid pixels only and fills each
hole with its nearest valid depth before tokenizing (`tokenizer.codec.encode_depth`), and the
trainer's validation scores valid pixels only. Held-out frames are also kept at the sensor's full
size for the before/after scores (`finetune.report`).

Every kept frame stays in memory at the model resolution until the frame files are written, and
the held-out frames to score (up to `--eval-frames`) at the sensor's full size as well; a long
recording, or large images, can outgrow the machine (`memory_warning`: `finetune --stride` keeps
fewer, `--eval-frames` scores fewer).
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


def scored_frame_bytes(width: int, height: int, teacher: bool = False) -> int:
    """Bytes of RAM one held-out frame kept at the sensor's full size to score takes: W x H x 3
    uint8 RGB, W x H float32 depth and W x H bool mask, and with a teacher its W x H float32
    label (about 17 MB at 1920x1080, 25 MB with a teacher). No margin: at that size the arrays
    are all of it."""
    return (3 + 4 + 1 + (4 if teacher else 0)) * width * height


def scored_frames(kept: int, eval_frames: int, heldout: float) -> int:
    """How many of `kept` frames are scored at full size: `eval_frames`, at most the held-out
    share of them (the split is by time, so about `heldout` of the kept frames)."""
    return min(eval_frames, math.ceil(round(heldout * kept, 6)))


def memory_warning(
    images: Sequence[int],
    stride: int,
    size: int,
    available: int | None,
    eval_frames: int = 0,
    image_wh: tuple[int, int] | None = None,
    heldout: float = 1.0,
    teacher: bool = False,
) -> str | None:
    """One line when the frames that `stride` keeps of bags of `images` images each would take
    more than half of `available` bytes: every kept frame at the model's size, and up to
    `eval_frames` of the held-out ones (the `heldout` share of them) also at the images' full
    `image_wh` to score (`scored_frame_bytes`, with the teacher's label). It gives the estimate
    and the smallest --stride that would fit, or, where the frames scored at full size alone
    outgrow the budget, the largest --eval-frames that would (with a --stride where needed).
    None when they fit or `available` is unknown."""
    if not available:
        return None
    per, budget = frame_bytes(size), available / 2
    big = scored_frame_bytes(*image_wh, teacher=teacher) if image_wh and eval_frames else 0

    def cost(st: int, n: int = eval_frames) -> tuple[int, int, float]:
        k = kept_images(images, st)
        m = scored_frames(k, n, heldout) if big else 0
        return k, m, k * per + m * big

    kept, scored, total = cost(stride)
    if total <= budget:
        return None
    longest = max(images)
    advice = None
    if scored * big <= budget:  # a stride can help: the smallest that fits
        fit = max(stride + 1, math.ceil(sum(images) * per / budget))
        while fit < longest and cost(fit)[2] > budget:
            fit += 1
        k, _, t = cost(fit)
        if t <= budget:
            advice = f"--stride {fit} would keep {k} frames (about {_amount(t)})"
    if advice is None and big:
        # fewer scored frames: what the training frames at this stride leave, at least half the
        # budget (the stride raised so that the training frames fit the rest)
        n = min(int(max(budget - kept * per, budget / 2) // big), scored - 1)
        if n >= 1:
            rest = budget - n * big
            fit = max(stride, math.ceil(sum(images) * per / rest))
            while fit < longest and kept_images(images, fit) * per > rest:
                fit += 1
            k, m, t = cost(fit, n)
            if t <= budget:
                raised = f"--stride {fit} " if fit > stride else ""
                advice = (
                    f"{raised}--eval-frames {n} would keep {k} frames and score {m} at full "
                    f"size (about {_amount(t)})"
                )
    if advice is None:
        options = "--stride or --eval-frames" if scored else "--stride"
        advice = f"no {options} fits {len(images)} bags; give fewer"
    full = ""
    if scored:
        w, h = image_wh
        full = f" and {scored} held-out ones at their full {w}x{h} to score"
    each = f"{per / 1000:.0f} KB a frame" + (f", {_amount(big)} a scored one" if scored else "")
    return (
        f"keeping {kept} of {sum(images)} images (--stride {stride}) at the model's {size} px"
        f"{full} takes about {_amount(total)} of memory ({each}), more than half of the "
        f"{_amount(available)} available: {advice}"
    )
