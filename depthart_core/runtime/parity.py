"""fp16 vs fp32 agreement of the exported graph on synthetic frames (ONNX Runtime on the CPU).

`fp16_parity` (`depthart parity`) reports the share of identical token maps and the depth error of
the fp16 graph (LayerNorm, GroupNorm and attention softmax kept in fp32) against the fp32 graph,
on frames from a synthetic seed the model never saw. Both graphs come from the ONNX cache
(`depthart_core.runtime.onnx_cache`), so each is exported once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depthart_core.checkpoint import CheckpointFile
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_frame
from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend
from depthart_core.runtime.preprocess import preprocess


def fp16_parity(
    checkpoint: str | Path | None = None, count: int = 20, seed: int = 4242
) -> dict[str, Any]:
    """Frames `0 .. count-1` of synthetic `seed` at the model's resolution through both graphs."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    ckpt = CheckpointFile(checkpoint)
    b32 = OnnxRuntimeBackend.from_checkpoint(ckpt, precision="fp32")
    b16 = OnnxRuntimeBackend.from_checkpoint(ckpt, precision="fp16")
    S = b32.image_size
    same, err_mean, err_max = [], [], []
    for i in range(count):
        rgb = render_frame(seed, i, SynthConfig(size=(S, S))).rgb
        x, _ = preprocess(rgb, S)
        d32, t32 = b32.run_with_tokens(x)
        d16, t16 = b16.run_with_tokens(x)
        same.append(float((t32 == t16).mean()))
        err_mean.append(float(np.abs(d32 - d16).mean()))
        err_max.append(float(np.abs(d32 - d16).max()))
    return {
        "frames": count,
        "token_agreement": float(np.mean(same)),
        "depth_abs_err_mean": float(np.mean(err_mean)),
        "depth_abs_err_max": float(np.max(err_max)),
        "backend": "onnxruntime CPU",
    }
