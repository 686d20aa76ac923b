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
    # Normal (non-inference) tensors, so a matrix first built under inference_mode can later
    # take part in autograd (training) too.
    with torch.inference_mode(False), torch.no_grad():
        return _build(n_in, n_out, mode)


def _build(n_in: int, n_out: int, mode: str) -> torch.Tensor:
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


_DEVICE_CACHE: dict[tuple, torch.Tensor] = {}


def _matrix(
    n_in: int, n_out: int, mode: str, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if torch.jit.is_tracing() or device.type == "cpu":
        return _matrix_cpu(n_in, n_out, mode).to(device=device, dtype=dtype)
    # One copy per device/dtype, so CUDA-graph capture and replay never copy from the host.
    key = (n_in, n_out, mode, str(device), dtype)
    if key not in _DEVICE_CACHE:
        # a normal tensor whatever the caller's mode: one first built under inference_mode (a
        # finetune teacher's labels) is later used by the student's training in this process
        with torch.inference_mode(False), torch.no_grad():
            _DEVICE_CACHE[key] = _matrix_cpu(n_in, n_out, mode).to(device=device, dtype=dtype)
    return _DEVICE_CACHE[key]


def resize_square(x_BChw: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Resize the last two (square) dims of x to size x size with a precomputed matrix."""
    n = int(x_BChw.shape[-1])  # a plain int even under tracing: the matrix is a constant
    if n == size:
        return x_BChw
    m_on = _matrix(n, size, mode, x_BChw.device, x_BChw.dtype)
    return m_on @ x_BChw @ m_on.t()
