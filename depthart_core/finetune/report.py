"""Before/after scores on the held-out block, and `report.md`, `report.json`, `figure.png`.

Both models predict every held-out frame at the sensor's full size through the PyTorch backend
(`runtime.torch_backend`, the node's own pre- and post-processing) and are scored where the
sensor measured:
- `depthart`: the paper's protocol (median scale per image; AbsRel, delta1_bad, MAE);
- `metric`: metres from a scale fitted per frame to `sparse_points` random sensor pixels
  (`metric_scale.fit_metric_scale`, as the node fits `sparse_depth` and `depthart replay
  --protocol metric` scores), then AbsRel, RMSE and delta1 with no further alignment. Both
  encodings the sensor may use (16UC1 mm, 32FC1 m) are metric, so both are always reported.
A model-free baseline is scored beside them: the training block's mean relative depth map.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from depthart_core.colormap import colorize
from depthart_core.evaluation.metrics import PRED_EPS
from depthart_core.evaluation.protocols import evaluate
from depthart_core.fileutil import atomic_write
from depthart_core.finetune.frames import Frame
from depthart_core.finetune.prepare import SmallFrame
from depthart_core.metric_scale import fit_metric_scale
from depthart_core.runtime.base import Backend
from depthart_core.tokenizer.codec import encode_depth

HEADLINE = {"depthart": ("abs_rel", "delta1_bad", "mae"), "metric": ("abs_rel", "rmse", "delta1")}


def _metric_depth(
    pred: np.ndarray, frame: Frame, sparse_points: int, seed: int
) -> np.ndarray | None:
    rng = np.random.default_rng([seed, frame.bag, frame.index])
    ys, xs = np.nonzero(frame.valid)
    pick = rng.choice(ys.size, size=min(sparse_points, ys.size), replace=False)
    sparse = np.full(frame.depth.shape, np.nan, dtype=np.float32)
    sparse[ys[pick], xs[pick]] = frame.depth[ys[pick], xs[pick]]
    fit, _ = fit_metric_scale(pred, sparse, "scale", min_points=min(20, sparse_points))
    # a relative depth of exactly 0 (the decoder's clamp) would become NaN ("invalid", as the
    # node publishes it); score it like the paper protocol does, floored at PRED_EPS
    return None if fit is None else fit.apply(np.maximum(pred, PRED_EPS))


def score(
    backend: Backend, frames: Sequence[Frame], sparse_points: int = 100, seed: int = 0
) -> tuple[dict[str, dict[str, float]], list[np.ndarray]]:
    """Per-protocol mean scores over `frames` and the predictions (relative depth)."""
    rows: dict[str, list[dict[str, float]]] = {"depthart": [], "metric": []}
    preds = []
    failed_fits = 0
    for f in frames:
        pred = backend.predict(f.rgb)
        preds.append(pred)
        rows["depthart"].append(evaluate(pred, f.depth, f.valid, "depthart"))
        metric = _metric_depth(pred, f, sparse_points, seed)
        if metric is None:
            failed_fits += 1
            continue
        rows["metric"].append(evaluate(metric, f.depth, f.valid, "metric"))
    out = {
        name: {k: float(np.mean([r[k] for r in rs])) for k in HEADLINE[name]}
        for name, rs in rows.items()
        if rs
    }
    out["frames"] = {"scored": len(frames), "metric_fit_failed": failed_fits}
    return out, preds


def mean_depth_prior(train: Sequence[SmallFrame]) -> np.ndarray:
    """The training block's mean relative depth map (S x S, the codec's d / q98 with holes
    filled): a model-free baseline that knows the place but not the image."""
    depth = torch.from_numpy(np.stack([f.depth for f in train]))
    valid = torch.from_numpy(np.stack([f.valid for f in train]))
    x_B3HW, _ = encode_depth(depth, valid)
    return ((x_B3HW[:, 0] + 1) / 2).mean(0).numpy()


def score_prior(prior_SS: np.ndarray, frames: Sequence[Frame]) -> dict[str, float]:
    """The prior resized to each held-out frame, under the paper's protocol."""
    rows = []
    for f in frames:
        h, w = f.depth.shape
        pred = cv2.resize(prior_SS, (w, h), interpolation=cv2.INTER_LINEAR)
        rows.append(evaluate(pred, f.depth, f.valid, "depthart"))
    return {k: float(np.mean([r[k] for r in rows])) for k in HEADLINE["depthart"]}


def relative_change(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """(after - before) / before per protocol and metric."""
    return {
        name: {
            k: (after[name][k] - before[name][k]) / before[name][k]
            for k in HEADLINE[name]
            if before[name][k]
        }
        for name in HEADLINE
        if name in before and name in after
    }


def _show(d: np.ndarray, lo: float, hi: float, valid: np.ndarray | None = None) -> np.ndarray:
    return colorize(np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1), valid=valid)


def figure(
    frames: Sequence[Frame],
    before: Sequence[np.ndarray],
    after: Sequence[np.ndarray],
    rows: int = 4,
) -> np.ndarray:
    """RGB | sensor depth | before | after, for `rows` frames spread over the held-out block;
    predictions median-aligned to the sensor and all depths on the sensor's colour scale."""
    pick = np.linspace(0, len(frames) - 1, min(rows, len(frames))).round().astype(int)
    out = []
    for i in pick:
        f = frames[i]
        lo, hi = np.percentile(f.depth[f.valid], [2, 98])
        cells = [f.rgb, _show(f.depth, lo, hi, f.valid)]
        for pred in (before[i], after[i]):
            scale = np.median(f.depth[f.valid] / np.maximum(pred[f.valid], 1e-6))
            cells.append(_show(pred * scale, lo, hi))
        out.append(np.concatenate(cells, axis=1))
    img = np.ascontiguousarray(np.concatenate(out, axis=0))
    w = frames[0].rgb.shape[1]
    for k, label in enumerate(("RGB", "sensor depth", "before", "after")):
        cv2.putText(img, label, (k * w + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return img


def write_report(out_dir: Path, report: dict[str, Any], fig: np.ndarray) -> None:
    """report.json, report.md and figure.png, each written atomically."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(fig[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode the figure for {out_dir / 'figure.png'}")
    atomic_write(out_dir / "figure.png", png.tobytes())
    atomic_write(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    atomic_write(out_dir / "report.md", markdown(report).encode())


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _per_bag(r: dict[str, Any]) -> list[str]:
    """The rejection causes, and with several bags one line of counts per bag."""
    lines = [f"- rejected, {cause}: {n}" for cause, n in r["counts"]["total"]["rejected"].items()]
    if len(r["bags"]) > 1:
        for bag, c in zip(r["bags"], r["counts"]["per_bag"], strict=True):
            b = c["blocks"]
            lines.append(
                f"- `{bag}`: {c['images']} images, {c['paired']} paired, {c['unmatched']} "
                f"unmatched, {c['rejected_total']} rejected; {b['train']} training, {b['gap']} "
                f"gap, {b['heldout']} held out"
            )
    return lines


def markdown(r: dict[str, Any]) -> str:
    c, split = r["counts"]["total"], r["split"]
    lines = [
        "# depthart finetune",
        "",
        f"Bags: {', '.join(r['bags'])}  ",
        f"Topics: image `{r['topics']['image']}`, depth `{r['topics']['depth']}` "
        f"({', '.join(r['depth_encodings'])})  ",
        f"Base checkpoint: `{r['base_checkpoint']}`  ",
        f"Fine-tuned checkpoint: `{r['checkpoint']}` ({r['train']['steps']} steps, "
        f"{r['train']['seconds']:.0f} s, tokenizer {r['train']['tokenizer']})",
        "",
        "## Frames",
        "",
        f"{c['images']} images, {c['depth_images']} depth images: {c['paired']} paired, "
        f"{c['unmatched']} unmatched (no depth stamp within {r['max_dt_s']} s), "
        f"{c['rejected_total']} rejected.",
        "",
    ]
    lines += _per_bag(r)
    lines += [
        "",
        f"Split by time: {split['train']} training frames, {split['gap']} dropped in the "
        f"{split['gap_s']} s gap, {split['heldout']} held out (the last "
        f"{split['heldout_share']:.0%} of each bag); {split['scored']} held-out frames scored.",
        "",
        "## Held-out scores",
        "",
        "| protocol | metric | base | fine-tuned | change |",
        "|---|---|---|---|---|",
    ]
    for name, keys in HEADLINE.items():
        if name not in r["before"] or name not in r["after"]:
            continue
        for k in keys:
            b, a = r["before"][name][k], r["after"][name][k]
            ch = r["change"].get(name, {}).get(k)
            lines.append(
                f"| {name} | {k} | {_fmt(b)} | {_fmt(a)} | {'' if ch is None else f'{ch:+.1%}'} |"
            )
    prior = r.get("baseline_mean_depth")
    if prior:
        lines.append(
            f"| depthart | abs_rel of the training block's mean depth map (no model) | "
            f"{_fmt(prior['abs_rel'])} | | |"
        )
    lines += [
        "",
        "`depthart`: the paper's protocol (median scale per image). `metric`: metres from a "
        f"scale fitted per frame to {r['sparse_points']} random sensor pixels. The mean depth "
        "map is a model-free baseline: where it beats the fine-tuned model, the place is very "
        "regular or the model (its tokenizer's resolution first) is the limit.",
        "",
        "![RGB | sensor depth | before | after](figure.png)",
        "",
    ]
    return "\n".join(lines)
