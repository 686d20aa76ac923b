"""Validation during training: metrics on a fixed held-out batch and a progress picture.

Stage 1 reports depth AbsRel through a full encode -> quantize -> decode, code usage / perplexity
per scale, and RGB reconstruction PSNR when the tokenizer is trained on RGB too. Stage 2 predicts
depth with the greedy KV-cached loop and scores it with the paper's protocol (median scale
alignment, AbsRel, delta1_bad).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthart_core.colormap import colorize
from depthart_core.evaluation.protocols import evaluate
from depthart_core.fileutil import atomic_write
from depthart_core.model import DepthART
from depthart_core.training.objectives import code_usage


def _protocol_scores(
    pred_BHW: np.ndarray, depth_BHW: np.ndarray, valid_BHW: np.ndarray
) -> dict[str, float]:
    rows = [
        evaluate(p, g, v, protocol="depthart")
        for p, g, v in zip(pred_BHW, depth_BHW, valid_BHW, strict=True)
    ]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("abs_rel", "delta1_bad")}


@torch.no_grad()
def validate(
    model: DepthART,
    batch: dict[str, torch.Tensor],
    stage: str,
    device: torch.device,
    chunk: int = 16,
    rgb: bool = True,
) -> tuple[dict[str, Any], np.ndarray]:
    """`rgb`: the tokenizer reconstructs RGB too (tokenizer_inputs: both), so stage 1 reports
    its RGB PSNR; a depth-only one is never trained on RGB, so it has none."""
    # each module's own mode, restored after: `model.train(True)` would also put the stage's
    # frozen half (eval since set-up) back in training mode, its dropout then noising the targets
    modes = {m: m.training for m in model.modules()}
    model.eval()
    rgb_u8 = batch["rgb"].to(device)
    rgb_x = rgb_u8.float() / 127.5 - 1.0
    depth, valid = batch["depth"].to(device), batch["valid"].to(device)
    preds = []
    metrics: dict[str, Any] = {}
    if stage == "tokenizer":
        if rgb:
            metrics["rgb_psnr"] = _rgb_psnr(model, rgb_x, chunk)
        for i in range(0, len(depth), chunk):
            sl = slice(i, i + chunk)
            preds.append(model.depth_round_trip(depth[sl], valid[sl]))
        metrics.update(code_usage(model))
    else:
        for i in range(0, len(rgb_x), chunk):
            preds.append(model.predict_normalized(rgb_x[i : i + chunk]))
    pred = torch.cat(preds).float().cpu().numpy()
    d, v = depth.cpu().numpy(), valid.cpu().numpy()
    metrics.update(_protocol_scores(pred, d, v))
    grid = _grid(rgb_u8[:4].cpu().numpy(), d[:4], v[:4], pred[:4])
    for m, training in modes.items():
        m.training = training
    return metrics, grid


def _rgb_psnr(model: DepthART, rgb: torch.Tensor, chunk: int) -> float:
    recon = torch.cat([model.tokenizer(rgb[i : i + chunk])[0] for i in range(0, len(rgb), chunk)])
    mse = ((recon.clamp(-1, 1) - rgb) / 2).square().mean(dim=(1, 2, 3))
    return float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())


def _norm(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    vals = x[valid] if valid.any() else x.ravel()
    lo, hi = np.percentile(vals, 2), np.percentile(vals, 98)
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)


def _grid(rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray, pred: np.ndarray) -> np.ndarray:
    rows = []
    for i in range(len(rgb)):
        gt = colorize(_norm(depth[i], valid[i]), valid=valid[i])
        pr = colorize(_norm(pred[i], valid[i]))
        rows.append(np.concatenate([rgb[i].transpose(1, 2, 0), gt, pr], axis=1))
    return np.concatenate(rows, axis=0)


def save_progress_plot(path: Path, history: list[dict[str, Any]], grid: np.ndarray) -> None:
    # pyplot only after choosing the Agg backend, so training never needs a display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if "loss" in r]
    val = [r for r in history if "val" in r]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train])
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    if val:
        axes[1].plot([r["step"] for r in val], [r["val"]["abs_rel"] for r in val], marker="o")
    axes[1].set(title="validation AbsRel (median-aligned)", xlabel="step")
    axes[2].imshow(grid)
    axes[2].set(title="RGB | ground truth | prediction")
    axes[2].axis("off")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))
    finally:
        plt.close(fig)
