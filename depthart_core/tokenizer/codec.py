"""Depth and image codecs: how pixels enter and leave the tokenizer.

Depth in (DepthART, Sec. "data"): per image, d / (q98(valid d) + 1e-7), then *2 - 1, clipped to
[-1, 1]; the map is repeated to 3 channels. Invalid pixels (Hypersim's NaN where no surface was
hit: windows, sky; zeros in other datasets) take the depth of the nearest valid pixel first, as the
authors inpaint NaNs for the tokenizer target (bulatko/DepthART `datasets/train/hypersim.py`,
`depth_inpaint`: nearest-neighbour interpolation). Encoding them as 0 would teach the model that
windows and sky are the nearest surface. Frames with many invalid pixels are dropped from training
instead (`training.data`). Depth out: decoder output clamped to [-1, 1], mapped to [0, 1]
with (x + 1) / 2, mean over the 3 channels: relative depth proportional to d / q98.
RGB in: uint8 [0, 255] -> [-1, 1].

Two depth codecs (`TokenizerConfig.depth_codec`) map r = d / q98 to x in [-1, 1]:
- "linear", the paper's: x = 2 r - 1. A step in x is the same step in depth everywhere, so a
  pixel at 3 % of q98 (the floor in front of a 0.3 m camera in a 30 m aisle) sits 0.06 from the
  bottom of the range and the tokenizer's error there is a large relative error.
- "log" (beyond the paper): x = 1 + 2 ln(r) / ln(R), r clipped to [1/R, 1] with R = 128: a step in
  x is the same *relative* step in depth everywhere, which is what AbsRel measures. Decoding
  gives r = exp((x - 1) ln(R) / 2), never zero; 1/R of q98 is the nearest depth it can say.
Both decode to a relative depth proportional to d (one scale, no shift), so median alignment,
sparse metric scale and the ground-plane scale work on either.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from depthart_core.config import DEPTH_CODECS

Q_PERCENTILE = 0.98
EPS = 1e-7
LOG_RANGE = 128.0  # the log codec spans r = d / q98 in [1 / LOG_RANGE, 1]
_HALF_LOG_RANGE = 0.5 * math.log(LOG_RANGE)


def check_codec(codec: str) -> str:
    if codec not in DEPTH_CODECS:
        raise ValueError(f"depth codec must be one of {DEPTH_CODECS}, got {codec!r}")
    return codec


def relative_to_codec(r: torch.Tensor, codec: str = "linear") -> torch.Tensor:
    """Relative depth r = d / q98 -> tokenizer value x in [-1, 1]."""
    if check_codec(codec) == "log":
        return (1.0 + torch.log(r.clamp(min=1.0 / LOG_RANGE)) / _HALF_LOG_RANGE).clamp(-1.0, 1.0)
    return (r * 2.0 - 1.0).clamp(-1.0, 1.0)


def depth_scale(depth_BHW: torch.Tensor, valid_BHW: torch.Tensor) -> torch.Tensor:
    """The per-image q98 of valid depth, (B,). Raises if an image has no valid pixel or NaN/Inf."""
    if depth_BHW.ndim != 3:
        raise ValueError(f"depth must be (B, H, W), got {tuple(depth_BHW.shape)}")
    if valid_BHW.shape != depth_BHW.shape:
        raise ValueError(
            f"valid mask shape {tuple(valid_BHW.shape)} != depth {tuple(depth_BHW.shape)}"
        )
    valid_BHW = valid_BHW.bool()
    bad = valid_BHW & ~torch.isfinite(depth_BHW)
    if bad.any():
        raise ValueError(f"depth has {int(bad.sum())} non-finite values marked valid")
    scales = []
    for b in range(depth_BHW.shape[0]):
        vals = depth_BHW[b][valid_BHW[b]]
        if vals.numel() == 0:
            raise ValueError(f"depth image {b} has no valid pixel")
        scales.append(torch.quantile(vals.float(), Q_PERCENTILE))
    return torch.stack(scales)


def encode_depth(
    depth_BHW: torch.Tensor, valid_BHW: torch.Tensor | None = None, codec: str = "linear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (any positive unit) -> tokenizer input (B, 3, H, W) in [-1, 1], and the q98 scale."""
    if valid_BHW is None:
        valid_BHW = torch.isfinite(depth_BHW) & (depth_BHW > 0)
    scale_B = depth_scale(depth_BHW, valid_BHW)
    d = inpaint_nearest(depth_BHW, valid_BHW.bool())
    x = relative_to_codec(d / (scale_B.view(-1, 1, 1) + EPS), codec)
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), scale_B


def inpaint_nearest(depth_BHW: torch.Tensor, valid_BHW: torch.Tensor) -> torch.Tensor:
    """Every invalid pixel takes the depth of its nearest valid pixel (Euclidean, exact)."""
    # scipy: the `train` extra (only training and validation encode ground-truth depth)
    from scipy.ndimage import distance_transform_edt

    out = depth_BHW.clone()
    for b in range(depth_BHW.shape[0]):
        hole = ~valid_BHW[b].cpu().numpy()
        if not hole.any():
            continue
        iy, ix = distance_transform_edt(hole, return_distances=False, return_indices=True)
        src = torch.from_numpy(np.ascontiguousarray(iy * hole.shape[1] + ix)).to(out.device)
        out[b] = depth_BHW[b].flatten()[src.flatten()].view_as(out[b])
    return out


def decode_depth(x_B3HW: torch.Tensor, codec: str = "linear") -> torch.Tensor:
    """Decoder output -> relative depth (B, H, W) in [0, 1] ([1 / LOG_RANGE, 1] for "log")."""
    if x_B3HW.ndim != 4 or x_B3HW.shape[1] != 3:
        raise ValueError(f"decoder output must be (B, 3, H, W), got {tuple(x_B3HW.shape)}")
    if check_codec(codec) == "log":  # the channels' mean value, then back to depth
        return torch.exp((x_B3HW.clamp(-1.0, 1.0).mean(dim=1) - 1.0) * _HALF_LOG_RANGE)
    return ((x_B3HW.clamp(-1.0, 1.0) + 1.0) * 0.5).mean(dim=1)


def encode_rgb(rgb_B3HW_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 or float [0, 255] RGB (B, 3, H, W) -> [-1, 1] float."""
    return rgb_B3HW_uint8.float() / 127.5 - 1.0
