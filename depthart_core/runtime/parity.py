"""Reduced-precision vs fp32 agreement on synthetic frames.

`fp16_parity` (`depthart parity`) reports the share of identical token maps and the depth error of
a reduced-precision run against the fp32 run of the same backend, on frames from a synthetic seed
the model never saw:
- ONNX Runtime (the default): the fp16 graph (LayerNorm, GroupNorm and attention softmax kept in
  fp32) against the fp32 graph, both from the ONNX cache (`depthart_core.runtime.onnx_cache`);
- torch: autocast fp16 (CUDA only) or bf16 against fp32 on `device`, e.g. a GPU.

A run that gives non-finite depth (ONNX Runtime 1.19.0 and 1.19.2 give the fp16 graph all-NaN
depth) makes the errors NaN; the result then says which run and how many pixels
(`nonfinite_depth`), and `nonfinite_figures` names the figures `depthart parity` refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depthart_core.checkpoint import CheckpointFile
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_frame
from depthart_core.runtime import check_device
from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend
from depthart_core.runtime.preprocess import preprocess
from depthart_core.runtime.torch_backend import DepthEstimator

PARITY_BACKENDS = ("onnxruntime", "torch")
FIGURES = ("token_agreement", "depth_abs_err_mean", "depth_abs_err_max")


def fp16_parity(
    checkpoint: str | Path | None = None,
    count: int = 20,
    seed: int = 4242,
    backend: str = "onnxruntime",
    device: str = "cpu",
    precision: str = "fp16",
) -> dict[str, Any]:
    """Frames `0 .. count-1` of synthetic `seed` at the model's resolution through the fp32 and
    the `precision` run of `backend` (`device` only for torch)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if backend not in PARITY_BACKENDS:
        raise ValueError(f"backend must be one of {PARITY_BACKENDS}, got {backend!r}")
    if backend == "onnxruntime" and (precision != "fp16" or device != "cpu"):
        raise ValueError(
            f"the ONNX Runtime parity compares the fp16 graph on the CPU; got precision "
            f"{precision!r}, device {device!r} (use --backend torch for a GPU or bf16)"
        )
    if backend == "torch":
        check_device(device)  # CUDA on a CPU-only PyTorch: one line, not an assertion
    ckpt = CheckpointFile(checkpoint)
    if backend == "onnxruntime":
        b32 = OnnxRuntimeBackend.from_checkpoint(ckpt, precision="fp32")
        b16 = OnnxRuntimeBackend.from_checkpoint(ckpt, precision="fp16")
        where = "onnxruntime CPU"
    else:  # the two share one model: autocast changes the arithmetic, not the weights
        b32 = DepthEstimator.from_checkpoint(ckpt, device=device, precision="fp32")
        b16 = DepthEstimator.from_checkpoint(ckpt, device=device, precision=precision)
        where = f"torch {b16.device}"
        if b16.device.type == "cuda":
            import torch

            where += f" ({torch.cuda.get_device_name(b16.device)})"
    S = b32.image_size
    same, err_mean, err_max = [], [], []
    nonfinite = {"fp32": 0, precision: 0}  # depth pixels of each run that are not finite
    for i in range(count):
        rgb = render_frame(seed, i, SynthConfig(size=(S, S))).rgb
        x, _ = preprocess(rgb, S)
        d32, t32 = b32.run_with_tokens(x)
        d16, t16 = b16.run_with_tokens(x)
        nonfinite["fp32"] += int(np.size(d32) - np.isfinite(d32).sum())
        nonfinite[precision] += int(np.size(d16) - np.isfinite(d16).sum())
        same.append(float((t32 == t16).mean()))
        err_mean.append(float(np.abs(d32 - d16).mean()))
        err_max.append(float(np.abs(d32 - d16).max()))
    result: dict[str, Any] = {
        "frames": count,
        "token_agreement": float(np.mean(same)),
        "depth_abs_err_mean": float(np.mean(err_mean)),
        "depth_abs_err_max": float(np.max(err_max)),
        "backend": where,
        "precision": precision,
    }
    if any(nonfinite.values()):  # only then: the figures are NaN, and this says whose
        result["nonfinite_depth"] = {k: v for k, v in nonfinite.items() if v}
        result["depth_pixels_per_run"] = int(np.size(d32)) * count
    return result


def nonfinite_figures(result: dict[str, Any]) -> list[str]:
    """The names of the figures (`FIGURES`) of a `fp16_parity` result that are NaN or infinite,
    or missing."""
    bad = []
    for name in FIGURES:
        value = result.get(name)
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            bad.append(name)
    return bad
