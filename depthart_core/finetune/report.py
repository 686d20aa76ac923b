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

With a teacher (`finetune.teacher`) base and student are also scored against the teacher's labels
(paper protocol, `vs_teacher`), and base, student and teacher against sensor depth on the scored
frames that have it; the figure is RGB | teacher | before | after, with sensor depth where there is
one.
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
from depthart_core.fileutil import atomic_write, text_bytes
from depthart_core.finetune.frames import MAPPINGS, Frame
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
    preds = [backend.predict(f.rgb) for f in frames]
    return score_predictions(preds, frames, sparse_points, seed), preds


def score_predictions(
    preds: Sequence[np.ndarray], frames: Sequence[Frame], sparse_points: int = 100, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Per-protocol mean scores of `preds` against the frames' sensor depth."""
    rows: dict[str, list[dict[str, float]]] = {"depthart": [], "metric": []}
    failed_fits = 0
    for f, pred in zip(frames, preds, strict=True):
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
    return out


def score_against(preds: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean paper-protocol scores of `preds` against the teacher's labels (valid where > 0)."""
    rows = [
        evaluate(p, t, np.isfinite(t) & (t > 0), "depthart")
        for p, t in zip(preds, labels, strict=True)
    ]
    return {k: float(np.mean([r[k] for r in rows])) for k in HEADLINE["depthart"]}


def score_taught(
    backends: Sequence[Backend],
    frames: Sequence[Frame],
    labels: Sequence[np.ndarray],
    train: Sequence[SmallFrame],
    sparse_points: int = 100,
    seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray]:
    """Teacher mode's scores and figure; `backends` = (base, student)."""
    names = ("before", "after")
    preds = {k: [b.predict(f.rgb) for f in frames] for k, b in zip(names, backends, strict=True)}
    vs = {k: score_against(preds[k], labels) for k in ("before", "after")}
    out: dict[str, Any] = {"vs_teacher": vs | {"change": _change(vs["before"], vs["after"])}}
    preds["teacher"] = list(labels)
    sensor = [k for k, f in enumerate(frames) if f.depth is not None]
    out["sensor_frames"] = len(sensor)
    if sensor:
        fs = [frames[k] for k in sensor]
        for name, p in preds.items():
            key = "teacher_vs_sensor" if name == "teacher" else name
            out[key] = score_predictions([p[k] for k in sensor], fs, sparse_points, seed)
        out["change"] = relative_change(out["before"], out["after"])
        out["baseline_mean_depth"] = score_prior(mean_depth_prior(train), fs)
    return out, figure(frames, preds["before"], preds["after"], labels)


def _change(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: (after[k] - before[k]) / before[k] for k in before if before[k]}


PRIOR_CHUNK = 256  # training frames encoded at once for the mean-depth prior


def mean_depth_prior(train: Sequence[SmallFrame]) -> np.ndarray:
    """The training block's mean relative depth map (S x S, the codec's d / q98 with holes
    filled): a model-free baseline that knows the place but not the image."""
    total_SS = None
    for i in range(0, len(train), PRIOR_CHUNK):  # in chunks: encoding all at once took ~27 S^2
        chunk = train[i : i + PRIOR_CHUNK]  # bytes a frame (1.8 MB at 256 px), after training
        depth = torch.from_numpy(np.stack([f.depth for f in chunk]))
        valid = torch.from_numpy(np.stack([f.valid for f in chunk]))
        x_B3HW, _ = encode_depth(depth, valid)
        part_SS = ((x_B3HW[:, 0] + 1) / 2).double().sum(0)
        total_SS = part_SS if total_SS is None else total_SS + part_SS
    return (total_SS / len(train)).float().numpy()


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
        name: _change({k: before[name][k] for k in HEADLINE[name]}, after[name])
        for name in HEADLINE
        if name in before and name in after
    }


def _show(d: np.ndarray, lo: float, hi: float, valid: np.ndarray | None = None) -> np.ndarray:
    return colorize(np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1), valid=valid)


def figure(
    frames: Sequence[Frame],
    before: Sequence[np.ndarray],
    after: Sequence[np.ndarray],
    labels: Sequence[np.ndarray] | None = None,
    rows: int = 4,
) -> np.ndarray:
    """RGB | sensor depth | before | after, for `rows` frames spread over the held-out block;
    predictions median-aligned to the sensor and all depths on the sensor's colour scale. With
    the teacher's `labels` the second column is the teacher's, and the reference."""
    pick = np.linspace(0, len(frames) - 1, min(rows, len(frames))).round().astype(int)
    out = []
    for i in pick:
        f = frames[i]
        ref = labels[i] if labels is not None else f.depth
        ok = np.isfinite(ref) & (ref > 0) if labels is not None else f.valid
        lo, hi = np.percentile(ref[ok], [2, 98])
        cells = [f.rgb, _show(ref, lo, hi, ok)]
        for pred in (before[i], after[i]):
            scale = np.median(ref[ok] / np.maximum(pred[ok], 1e-6))
            cells.append(_show(pred * scale, lo, hi))
        out.append(np.concatenate(cells, axis=1))
    img = np.ascontiguousarray(np.concatenate(out, axis=0))
    w = frames[0].rgb.shape[1]
    second = "teacher" if labels is not None else "sensor depth"
    for k, label in enumerate(("RGB", second, "before", "after")):
        cv2.putText(img, label, (k * w + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return img


def write_report(out_dir: Path, report: dict[str, Any], fig: np.ndarray) -> None:
    """report.json, report.md and figure.png, each written atomically."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(fig[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode the figure for {out_dir / 'figure.png'}")
    atomic_write(out_dir / "figure.png", png.tobytes())
    atomic_write(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    atomic_write(out_dir / "report.md", text_bytes(markdown(report)))


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _per_bag(r: dict[str, Any]) -> list[str]:
    """The rejection causes, and with several bags one line of counts per bag."""
    lines = [f"- rejected, {cause}: {n}" for cause, n in r["counts"]["total"]["rejected"].items()]
    if len(r["bags"]) > 1:
        for bag, c in zip(r["bags"], r["counts"]["per_bag"], strict=True):
            b = c["blocks"]
            strided = f", {c['strided']} left out by --stride" if c.get("strided") else ""
            lines.append(
                f"- `{bag}`: {c['images']} images, {c['paired']} paired, {c['unmatched']} "
                f"unmatched, {c['rejected_total']} rejected{strided}; {b['train']} training, "
                f"{b['gap']} gap, {b['heldout']} held out"
            )
    return lines


def _split_unit(split: dict[str, Any]) -> str:
    """What the held-out share is of: each bag, or each recording where bags were split together
    (their stamps overlap or nearly touch: one drive in several bags)."""
    joined = [g for g in split.get("recordings", []) if len(g) > 1]
    if not joined:
        return "each bag"
    names = "; ".join("+".join(str(b + 1) for b in g) for g in joined)
    return f"each recording: bags {names} are one, their stamps overlapping or within the gap"


def _mapping_lines(r: dict[str, Any]) -> list[str]:
    """How the sensor depth was put onto the image grid, with the CameraInfo topics read; a
    report without the record (an older run) says nothing."""
    mapping = r["counts"]["total"].get("mapping")
    if not mapping:
        return []
    frames = r.get("settings", {}).get("frames", {})
    infos = [t for t in (frames.get("camera_info_topic"), frames.get("depth_info_topic")) if t]
    read = f" (CameraInfo: {', '.join(f'`{t}`' for t in infos)})" if infos else ""
    done = "; ".join(f"{n} {MAPPINGS.get(k, k)}" for k, n in mapping.items())
    return ["", f"Depth onto the image grid{read}: {done}."]


def _stride_lines(r: dict[str, Any]) -> list[str]:
    """What --stride left out; nothing at 1 (every image) or in a report from before it."""
    stride = r.get("settings", {}).get("frames", {}).get("stride", 1)
    if stride == 1:
        return []
    left = r["counts"]["total"].get("strided", 0)
    return [
        "",
        f"--stride {stride}: 1 image in {stride} of each bag kept (recording order), {left} "
        "left out undecoded; the split is that of every image.",
    ]


def _frames_lines(r: dict[str, Any]) -> list[str]:
    c, split = r["counts"]["total"], r["split"]
    if "teacher" in r:
        no_sensor = sum(c.get("no_sensor", {}).values())
        lines = [
            f"{c['images']} images: {c['paired']} used (each labelled by the teacher), "
            f"{c['rejected_total']} rejected; {c['depth_images']} depth images, which only "
            f"score: {c['paired'] - no_sensor if c['depth_images'] else 0} used frames have "
            "usable sensor depth."
        ]
        lines += [f"- no sensor depth, {cause}: {n}" for cause, n in c.get("no_sensor", {}).items()]
    else:
        lines = [
            f"{c['images']} images, {c['depth_images']} depth images: {c['paired']} paired, "
            f"{c['unmatched']} unmatched (no depth stamp within {r['max_dt_s']} s), "
            f"{c['rejected_total']} rejected."
        ]
    lines += _stride_lines(r)
    lines += _mapping_lines(r)
    per_bag = _per_bag(r)
    lines += [""] + per_bag + ([""] if per_bag else [])
    lines += [
        f"Split by time: {split['train']} training frames, {split['gap']} dropped in the "
        f"{split['gap_s']} s gap, {split['heldout']} held out (the last "
        f"{split['heldout_share']:.0%} of {_split_unit(split)}); {split['scored']} held-out "
        "frames scored.",
    ]
    return lines


def _teacher_lines(r: dict[str, Any]) -> list[str]:
    t, vs = r["teacher"], r["vs_teacher"]
    flip = ", flip-averaged" if t["flip_average"] else ""
    made = (
        f"labelled {t['labelled_frames']} frames in {t['label_seconds']:.0f} s"
        if t["labels"] == "computed"
        else "labels from the cache"
    )
    lines = [
        f"Teacher: `{t['checkpoint']}` (sha256 {t['sha256'][:12]}, input {t['image_size']} px, "
        f"{t['sampling']} decoding{flip}); {made}.",
        "",
        "## Held-out scores against the teacher",
        "",
        "| metric | base | student | change |",
        "|---|---|---|---|",
    ]
    for k in HEADLINE["depthart"]:
        ch = vs["change"].get(k)
        lines.append(
            f"| {k} | {_fmt(vs['before'][k])} | {_fmt(vs['after'][k])} | "
            f"{'' if ch is None else f'{ch:+.1%}'} |"
        )
    return lines + [""]


def _sensor_table(r: dict[str, Any]) -> list[str]:
    taught = "teacher_vs_sensor" in r
    head = "| protocol | metric | base | fine-tuned | change |" + (" teacher |" if taught else "")
    lines = [head, "|---|---|---|---|---|" + ("---|" if taught else "")]
    for name, keys in HEADLINE.items():
        if name not in r["before"] or name not in r["after"]:
            continue
        for k in keys:
            b, a = r["before"][name][k], r["after"][name][k]
            ch = r["change"].get(name, {}).get(k)
            row = f"| {name} | {k} | {_fmt(b)} | {_fmt(a)} | {'' if ch is None else f'{ch:+.1%}'} |"
            if taught:
                t = r["teacher_vs_sensor"].get(name, {}).get(k)
                row += f" {'' if t is None else _fmt(t)} |"
            lines.append(row)
    prior = r.get("baseline_mean_depth")
    if prior:
        of = "the teacher's labels of the training block" if taught else "the training block"
        lines.append(
            f"| depthart | abs_rel of the mean depth map of {of} (no model) | "
            f"{_fmt(prior['abs_rel'])} | | |" + (" |" if taught else "")
        )
    return lines


def _train_time(train: dict[str, Any]) -> str:
    """The run's training time: every process's, a resumed run's earlier ones included."""
    per = train.get("seconds_per_process", [train["seconds"]])
    said = f"{train['seconds']:.0f} s"
    if len(per) == 1:
        return said
    unknown = sum(s is None for s in per)
    return f"{said} in {len(per)} processes" + (
        f", {unknown} of them unrecorded (killed, or from before the record)" if unknown else ""
    )


def markdown(r: dict[str, Any]) -> str:
    taught = "teacher" in r
    lines = [
        "# depthart finetune",
        "",
        f"Bags: {', '.join(r['bags'])}  ",
        f"Topics: image `{r['topics']['image']}`, depth `{r['topics']['depth'] or 'none'}` "
        f"({', '.join(r['depth_encodings']) or 'none'}{'; scores only' if taught else ''})  ",
        f"Base checkpoint: `{r['base_checkpoint']}`  ",
        f"Fine-tuned checkpoint: `{r['checkpoint']}` ({r['train']['steps']} steps, "
        f"{_train_time(r['train'])}, tokenizer {r['train']['tokenizer']})",
        "",
        "## Frames",
        "",
    ]
    lines += _frames_lines(r) + [""]
    if taught:
        lines += _teacher_lines(r)
    if "before" in r:
        n = f" ({r['sensor_frames']} scored frames with sensor depth)" if taught else ""
        lines += [f"## Held-out scores against sensor depth{n}", ""] + _sensor_table(r)
    legend = (  # the sensor table's columns and rows, said only where that table is
        "`depthart`: the paper's protocol (median scale per image). `metric`: metres from a "
        f"scale fitted per frame to {r['sparse_points']} random sensor pixels. The mean depth "
        "map is a model-free baseline: where it beats the fine-tuned model, the place is very "
        "regular or the model (its tokenizer's resolution first) is the limit."
        if "before" in r
        else "Scored against the teacher's labels only: the bag gave no sensor depth "
        "(--depth-topic) to score against."
    )
    lines += [
        "",
        f"Base and fine-tuned model decode {r.get('decoding', 'soft')} (the PyTorch backend's "
        "default)"
        + (f"; the teacher's labels: its {r['teacher']['sampling']} decoding. " if taught else ". ")
        + legend,
        "",
        f"Uncertainty head: {r.get('uncertainty', 'not recorded')}.",
        "",
        f"![RGB | {'teacher' if taught else 'sensor depth'} | before | after](figure.png)",
        "",
    ]
    return "\n".join(lines)
