"""Resizing as constant separable matrices.

VAR resizes latents with `F.interpolate(mode="area")` (down) and `mode="bicubic"` (up). Both are
separable linear maps, so we precompute them once as (out, in) matrices and apply them with two
matmuls: numerically the same as `F.interpolate` (tested), faster for tiny maps, and exportable
to ONNX as plain MatMuls for any size pair (adaptive pooling with non-divisible sizes is not).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=256)
def _matrix_cpu(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    eye_1I1I = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)
    if mode == "area":
        out = F.adaptive_avg_pool2d(eye_1I1I, (n_out, 1))
    elif mode == "bicubic":
        out = F.interpolate(eye_1I1I, size=(n_out, 1), mode="bicubic", align_corners=False)
    else:
        raise ValueError(f"unknown resize mode {mode!r}; expected 'area' or 'bicubic'")
    # out[i, 0, o, 0] is the weight of input i in output o.
    return out.view(n_in, n_out).t().contiguous().float()


def resize_matrix(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """(n_out, n_in) matrix M with resize_1d(x) = M @ x."""
    return _matrix_cpu(n_in, n_out, mode).clone()


def resize_square(x_BChw: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Resize the last two (square) dims of x to size x size with a precomputed matrix."""
    n = int(x_BChw.shape[-1])  # a plain int even under tracing: the matrix is a constant
    if n == size:
        return x_BChw
    m_on = _matrix_cpu(n, size, mode).to(device=x_BChw.device, dtype=x_BChw.dtype)
    return m_on @ x_BChw @ m_on.t()
