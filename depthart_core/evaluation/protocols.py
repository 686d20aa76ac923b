"""Evaluation protocols as named presets, `evaluate` for one image and `aggregate` for a dataset.

- `depthart`: the DepthART paper's protocol (paper sec. 6; DepthART `config/launch/eval/
  depthART.yaml`: `AlignerSIL1`, metrics D1, AbsRel, MAE). Scale-only alignment in depth space by
  median(gt / pred); AbsRel, the bad-pixel fraction `delta1_bad` (ratio > 1.25, lower is better;
  the paper's table calls it "delta1") and MAE. No clipping of the aligned prediction.
- `affine`: the common zero-shot protocol of Marigold (Ke et al. 2024, sec. 4.1; Marigold
  `eval.py`): least-squares scale and shift in depth space, the aligned prediction clipped to the
  dataset's valid depth range, AbsRel and delta1 (good-pixel fraction) as headline plus the usual
  Eigen metrics.
- `affine_disparity`: the same fit in disparity space (Marigold `--alignment
  least_square_disparity`, used for models that predict affine-invariant disparity).
- `metric`: no alignment, for predictions already in metres; clipped to the dataset range as
  Eigen-split KITTI code does.

Aggregation, for every protocol: metrics are computed per image and averaged over images. This is
what both sources do: DepthART's `DepthMetric(normalize_by_image=True)` adds each image's mean and
counts images, and Marigold's `MetricTracker` averages the per-sample values `eval.py` feeds it.
Images with no valid pixel are skipped by both (DepthART: `if cur_denum > 0`); the runner does the
same and counts them.

Evaluation resolution (`paper_eval_size`): the paper scores at 256 x 256 except iBims-1, scored at
its ground-truth resolution 640 x 480 (DepthART `config/core/datasets/eval/*.yaml`: `size: [256,
256]`, iBims-1 with `eval_fullres: true`), where its planarity errors pe-fla / pe-ori are defined.

After alignment the prediction is clamped to `PRED_EPS` (1e-6 m, Marigold's floor) so that ratios
and logarithms exist; the same clamped map feeds every metric, including MAE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from depthart_core.evaluation.alignment import ALIGNMENTS, apply_alignment, fit_alignment
from depthart_core.evaluation.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    PRED_EPS,
    PixelPairs,
    masked_pairs,
    score_pairs,
)

EIGEN_METRICS = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "delta1",
    "delta2",
    "delta3",
)


PAPER_EVAL_SIZE = 256
PAPER_FULL_RESOLUTION = ("ibims1",)


def paper_eval_size(dataset: str) -> int | None:
    """The paper's evaluation size for a canonical dataset name (None: ground-truth resolution)."""
    return None if dataset in PAPER_FULL_RESOLUTION else PAPER_EVAL_SIZE


@dataclass(frozen=True)
class Protocol:
    """How a prediction is aligned and scored. `headline` are the paper-table columns, in order."""

    name: str
    alignment: str
    metrics: tuple[str, ...]
    headline: tuple[str, ...]
    clip_to_range: bool
    description: str

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"protocol {self.name}: unknown alignment {self.alignment!r}")
        unknown = [m for m in (*self.metrics, *self.headline) if m not in METRICS]
        if unknown:
            raise ValueError(f"protocol {self.name}: unknown metric(s) {unknown}")
        missing = [m for m in self.headline if m not in self.metrics]
        if missing:
            raise ValueError(f"protocol {self.name}: headline metric(s) {missing} not computed")


PROTOCOLS: dict[str, Protocol] = {
    "depthart": Protocol(
        name="depthart",
        alignment="median_scale",
        metrics=("abs_rel", "delta1_bad", "mae"),
        headline=("delta1_bad", "abs_rel"),
        clip_to_range=False,
        description="DepthART paper: median scale in depth space, per-image mean",
    ),
    "affine": Protocol(
        name="affine",
        alignment="lstsq_scale_shift",
        metrics=(*EIGEN_METRICS, "mae"),
        headline=("abs_rel", "delta1"),
        clip_to_range=True,
        description="Marigold zero-shot: least-squares scale and shift in depth, per-image mean",
    ),
    "affine_disparity": Protocol(
        name="affine_disparity",
        alignment="lstsq_scale_shift_disparity",
        metrics=(*EIGEN_METRICS, "mae"),
        headline=("abs_rel", "delta1"),
        clip_to_range=True,
        description="least-squares scale and shift in disparity space, per-image mean",
    ),
    "metric": Protocol(
        name="metric",
        alignment="none",
        metrics=(*EIGEN_METRICS, "mae"),
        headline=("abs_rel", "delta1", "rmse"),
        clip_to_range=True,
        description="no alignment (predictions in metres), per-image mean",
    ),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; available: {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol]


@dataclass
class ImageResult:
    """One image's scores plus what produced them (the aligned map feeds error visualisations)."""

    metrics: dict[str, float]
    scale: float
    shift: float
    n_valid: int
    # HxW float64, after alignment, range clipping and the PRED_EPS floor (None where the caller
    # asked for none: `evaluate_image(..., aligned_map=False)`)
    aligned: np.ndarray | None


def _clip_and_floor(aligned: np.ndarray, clip: tuple[float, float] | None) -> np.ndarray:
    if clip is not None:
        aligned = np.clip(aligned, *clip)
    return np.maximum(aligned, PRED_EPS)


def evaluate_image(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    protocol: str | Protocol = "depthart",
    depth_range: tuple[float, float] | None = None,
    aligned_map: bool = True,
) -> ImageResult:
    """Align `pred` to `gt` on `valid` pixels and score it under `protocol`.

    `depth_range` (lo, hi) is the dataset's valid range; protocols with `clip_to_range` clip the
    aligned prediction to it. Raises `ValueError` for an empty mask or invalid ground truth. The
    valid pixels are pulled out of the maps once; the alignment and every metric use those
    vectors, and the full aligned map (`ImageResult.aligned`) is built only with `aligned_map`.
    """
    proto = get_protocol(protocol)
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"pred must be an HxW depth map, got shape {pred.shape}")
    p, g = masked_pairs(pred, gt, valid)  # shape, dtype, emptiness and finiteness checks, once
    scale, shift = fit_alignment(p, g, proto.alignment)
    clip = None
    if proto.clip_to_range and depth_range is not None:
        lo, hi = depth_range
        if not lo < hi:
            raise ValueError(f"depth_range must have lo < hi, got {depth_range}")
        clip = (lo, hi)
    aligned_p = _clip_and_floor(apply_alignment(p, proto.alignment, scale, shift), clip)
    bad = int(np.count_nonzero(~np.isfinite(aligned_p)))  # an overflowing scale, say
    if bad:
        raise ValueError(f"{bad} of {p.size} valid predicted pixels are not finite")
    scores = score_pairs(PixelPairs(aligned_p, g), proto.metrics)
    aligned = None
    if aligned_map:
        aligned = _clip_and_floor(apply_alignment(pred, proto.alignment, scale, shift), clip)
    return ImageResult(scores, scale, shift, p.size, aligned)


def evaluate(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    protocol: str | Protocol = "depthart",
    depth_range: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Metrics for one image under `protocol` (see `evaluate_image`; no aligned map is built)."""
    return evaluate_image(pred, gt, valid, protocol, depth_range, aligned_map=False).metrics


def aggregate(
    per_image: Sequence[Mapping[str, float]], protocol: str | Protocol = "depthart"
) -> dict[str, float]:
    """Per-image mean of each of the protocol's metrics over a dataset."""
    proto = get_protocol(protocol)
    if not per_image:
        raise ValueError("no image was scored: nothing to aggregate")
    out = {}
    for name in proto.metrics:
        values = [row[name] for row in per_image]
        out[name] = float(np.mean(values))
    return out


def higher_is_better(metric: str) -> bool:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    return metric in HIGHER_IS_BETTER
