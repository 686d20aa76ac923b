"""AbsRel after each scale of the next-scale loop: does the refinement improve its own start?

k = 0 is the latent the loop starts from (the conv encoder's estimate, or zero), decoded as it
is; k = K is the model's output. Every latent is decoded through the tokenizer and scored at the
ground truth's resolution with the DepthART protocol (median scale, per frame), as
`depthart eval` scores the output. Used by `tests/test_shipped_checkpoint.py` (issue 24's
refinement bar) and `training/diagnostics.py scales` (the same curve with intervals, token
agreement and confidence bins).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from depthart_core.evaluation.protocols import evaluate
from depthart_core.model import DepthART, SamplingConfig


def model_inputs(samples: Sequence, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb (N, 3, S, S) in [-1, 1] area-resized, depth (N, S, S) nearest, 0 where invalid)."""
    rgb = [cv2.resize(s.rgb, (size, size), interpolation=cv2.INTER_AREA) for s in samples]
    x_N3SS = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float() / 127.5 - 1
    depth = [
        cv2.resize(
            np.where(s.valid, s.depth, 0).astype(np.float32),
            (size, size),
            interpolation=cv2.INTER_NEAREST,
        )
        for s in samples
    ]
    return x_N3SS, torch.from_numpy(np.stack(depth))


def score_latent(model: DepthART, f_BChw: torch.Tensor, samples: Sequence) -> np.ndarray:
    """AbsRel (B,) of each decoded latent against its sample's ground truth."""
    with torch.no_grad():
        d_BSS = model.decode(f_BChw).numpy()
    out = np.empty(len(samples))
    for i, (p_SS, s) in enumerate(zip(d_BSS, samples, strict=True)):
        up = cv2.resize(np.clip(p_SS, 1e-3, None), s.depth.shape[::-1])
        out[i] = evaluate(up, s.depth, s.valid)["abs_rel"]
    return out


def scale_curve(
    model: DepthART, samples: Sequence, sampling: SamplingConfig, batch: int = 20
) -> np.ndarray:
    """AbsRel (N, K + 1) of every frame after k = 0..K scales under `sampling`."""
    model.eval()
    K = model.tokenizer.quantize.num_scales
    res_Nk = np.zeros((len(samples), K + 1))
    for b0 in range(0, len(samples), batch):
        part = samples[b0 : b0 + batch]
        x_B3SS, _ = model_inputs(part, model.cfg.image_size)
        with torch.no_grad():
            img, f0 = model.prefix_and_start(x_B3SS)
            f_hats = [f for _, _, f in model.refine_steps(img, sampling, f0)]
        start = torch.zeros_like(f_hats[0]) if f0 is None else f0
        for k, f in enumerate([start, *f_hats]):
            res_Nk[b0 : b0 + len(part), k] = score_latent(model, f, part)
    return res_Nk
