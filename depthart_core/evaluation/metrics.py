"""Depth metrics: one small masked function per metric, each `(pred, gt, valid) -> float`, and
the same metrics on pixels already pulled out of the maps (`PixelPairs`, `score_pairs`), which is
how `evaluate_image` scores an image: one extraction for all its metrics.

Definitions follow Eigen et al. 2014 ("Depth Map Prediction from a Single Image using a Multi-Scale
Deep Network", sec. 4) as the field uses them (Marigold `src/util/metric.py`), computed over the
pixels where `valid` is True, for one image:

    abs_rel   mean |p - g| / g              sq_rel   mean (p - g)^2 / g
    rmse      sqrt mean (p - g)^2           rmse_log sqrt mean (ln p - ln g)^2
    log10     mean |log10 p - log10 g|      mae      mean |p - g|
    silog     100 sqrt(mean d^2 - (mean d)^2), d = ln p - ln g   (KITTI's scale-invariant log error)
    delta<k>  fraction with max(p/g, g/p) <  1.25^k   (higher is better)
    delta1_bad fraction with max(p/g, g/p) > 1.25     (the DepthART paper's "delta1", lower is
              better; DepthART `mde/capsules/meter/metrics_fn.py::d1`). Not 1 - delta1 where a
              ratio is exactly 1.25.
    ordinal_agreement  fraction of clearly ordered pixel pairs ordered the same way (not in
              METRICS: it samples pairs and needs no alignment; see its docstring)

Predictions at or below zero have no ratio or logarithm: every ratio/log metric clamps the
prediction to `PRED_EPS` first (Marigold clamps to the same 1e-6 before scoring). Ground truth must
be finite and positive wherever `valid` is set; violations raise, naming the count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property

import numpy as np

PRED_EPS = 1e-6  # floor for predictions before ratios and logs (metres)
DELTA_BASE = 1.25


def masked_pairs(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The valid pixels of `pred` and `gt` as float64 vectors. Raises on any malformed input."""
    pred, gt, valid = np.asarray(pred), np.asarray(gt), np.asarray(valid)
    if pred.shape != gt.shape or valid.shape != gt.shape:
        raise ValueError(
            f"pred {pred.shape}, gt {gt.shape} and valid {valid.shape} must have the same shape"
        )
    if valid.dtype != np.bool_:
        raise TypeError(f"valid must be a bool mask, got dtype {valid.dtype}")
    n = int(valid.sum())
    if n == 0:
        raise ValueError("valid mask is empty: no pixel to score")
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    bad_gt = int((~np.isfinite(g) | (g <= 0)).sum())
    if bad_gt:
        raise ValueError(f"{bad_gt} of {n} valid ground-truth pixels are not finite and > 0")
    bad_pred = int((~np.isfinite(p)).sum())
    if bad_pred:
        raise ValueError(f"{bad_pred} of {n} valid predicted pixels are not finite")
    return p, g


def _positive(p: np.ndarray) -> np.ndarray:
    return np.maximum(p, PRED_EPS)


class PixelPairs:
    """One image's valid pixels as float64 vectors `p` (prediction) and `g` (ground truth), as
    `masked_pairs` returns them, with what several metrics share (the prediction clamped to
    `PRED_EPS`, the log difference, the ratio max(p/g, g/p)) computed once on first use. Scoring
    an image pulls its pixels out of the maps once and feeds every metric from here."""

    def __init__(self, p: np.ndarray, g: np.ndarray) -> None:
        self.p, self.g = p, g

    @classmethod
    def from_maps(cls, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> PixelPairs:
        return cls(*masked_pairs(pred, gt, valid))

    @cached_property
    def positive(self) -> np.ndarray:
        return _positive(self.p)

    @cached_property
    def log_diff(self) -> np.ndarray:  # ln p - ln g, p clamped (rmse_log, silog)
        return np.log(self.positive) - np.log(self.g)

    @cached_property
    def ratio(self) -> np.ndarray:  # max(p/g, g/p), p clamped (every delta)
        p = self.positive
        return np.maximum(p / self.g, self.g / p)


def _abs_rel(x: PixelPairs) -> float:
    return float(np.mean(np.abs(x.positive - x.g) / x.g))


def _sq_rel(x: PixelPairs) -> float:
    return float(np.mean((x.positive - x.g) ** 2 / x.g))


def _rmse(x: PixelPairs) -> float:
    return float(np.sqrt(np.mean((x.p - x.g) ** 2)))


def _mae(x: PixelPairs) -> float:
    return float(np.mean(np.abs(x.p - x.g)))


def _rmse_log(x: PixelPairs) -> float:
    return float(np.sqrt(np.mean(x.log_diff**2)))


def _log10(x: PixelPairs) -> float:
    return float(np.mean(np.abs(np.log10(x.positive) - np.log10(x.g))))


def _silog(x: PixelPairs) -> float:
    d = x.log_diff
    var = max(float(np.mean(d**2) - np.mean(d) ** 2), 0.0)  # guard tiny negative round-off
    return 100.0 * float(np.sqrt(var))


def _delta(x: PixelPairs, k: int) -> float:
    return float(np.mean(x.ratio < DELTA_BASE**k))


def _delta1(x: PixelPairs) -> float:
    return _delta(x, 1)


def _delta2(x: PixelPairs) -> float:
    return _delta(x, 2)


def _delta3(x: PixelPairs) -> float:
    return _delta(x, 3)


def _delta1_bad(x: PixelPairs) -> float:
    return float(np.mean(x.ratio > DELTA_BASE))


PairMetricFn = Callable[[PixelPairs], float]

PAIR_METRICS: dict[str, PairMetricFn] = {
    "abs_rel": _abs_rel,
    "sq_rel": _sq_rel,
    "rmse": _rmse,
    "rmse_log": _rmse_log,
    "log10": _log10,
    "silog": _silog,
    "mae": _mae,
    "delta1": _delta1,
    "delta2": _delta2,
    "delta3": _delta3,
    "delta1_bad": _delta1_bad,
}


def score_pairs(pairs: PixelPairs, names: Iterable[str]) -> dict[str, float]:
    """The metrics `names` (keys of `METRICS`) of one image's extracted pixels, in that order."""
    return {name: PAIR_METRICS[name](pairs) for name in names}


def abs_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _abs_rel(PixelPairs.from_maps(pred, gt, valid))


def sq_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _sq_rel(PixelPairs.from_maps(pred, gt, valid))


def rmse(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _rmse(PixelPairs.from_maps(pred, gt, valid))


def mae(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _mae(PixelPairs.from_maps(pred, gt, valid))


def rmse_log(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _rmse_log(PixelPairs.from_maps(pred, gt, valid))


def log10(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _log10(PixelPairs.from_maps(pred, gt, valid))


def silog(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return _silog(PixelPairs.from_maps(pred, gt, valid))


def delta(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, k: int = 1) -> float:
    """Fraction of valid pixels with max(p/g, g/p) < 1.25**k (higher is better)."""
    return _delta(PixelPairs.from_maps(pred, gt, valid), k)


def delta1(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return delta(pred, gt, valid, 1)


def delta2(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return delta(pred, gt, valid, 2)


def delta3(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    return delta(pred, gt, valid, 3)


def delta1_bad(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid pixels with max(p/g, g/p) > 1.25 (lower is better; DepthART's "delta1")."""
    return _delta1_bad(PixelPairs.from_maps(pred, gt, valid))


def ordinal_agreement(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    pairs: int = 50_000,
    ratio: float = DELTA_BASE,
    seed: int = 0,
    max_row_gap: int | None = None,
) -> float:
    """Fraction of random pixel pairs, among those whose ground-truth depths differ by more than
    `ratio`, that the prediction orders the same way (a tie counts one half). Invariant to any
    monotonic rescaling of `pred`, so it needs no alignment: a constant map scores 0.5, a
    perfect one 1.0. It is one minus the weighted human disagreement rate of Chen et al. 2016
    ("Single-Image Depth Perception in the Wild", sec. 5) on sampled pairs with equal weights,
    and it asks the question "is the near thing nearer than what is behind it".

    `max_row_gap` draws the second pixel of each pair at most that many rows from the first
    (any column), which takes away the ground-plane cue "lower in the image is nearer": a map
    that only grows from the bottom row to the top scores about 0.5 on such pairs. Pairs are
    drawn with replacement by a generator seeded with `seed`, so a figure is reproducible."""
    p, g = masked_pairs(pred, gt, valid)
    if pairs <= 0 or ratio <= 1.0 or (max_row_gap is not None and max_row_gap < 0):
        raise ValueError(
            f"pairs must be > 0, ratio > 1 and max_row_gap >= 0, got pairs={pairs}, "
            f"ratio={ratio}, max_row_gap={max_row_gap}"
        )
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(g), pairs)
    if max_row_gap is None:
        j = rng.integers(0, len(g), pairs)
    else:  # partner: a random pixel of a nearby row, kept where valid
        h, w = valid.shape[:2]
        index = np.full(valid.shape, -1)
        index[valid] = np.arange(len(g))
        ys, _ = np.nonzero(valid)
        yj = ys[i] + rng.integers(-max_row_gap, max_row_gap + 1, pairs)
        xj = rng.integers(0, w, pairs)
        inside = (yj >= 0) & (yj < h)
        j = np.full(pairs, -1)
        j[inside] = index[yj[inside], xj[inside]]
        i, j = i[j >= 0], j[j >= 0]
    ordered = np.maximum(g[i] / g[j], g[j] / g[i]) > ratio
    if not ordered.any():
        raise ValueError(f"no sampled pair has ground-truth depths differing by more than {ratio}")
    i, j = i[ordered], j[ordered]
    agree = np.sign(p[i] - p[j]) * np.sign(g[i] - g[j])  # +1 same order, 0 tie, -1 reversed
    return float(np.mean((agree + 1.0) / 2.0))


def figure_ground(pred: np.ndarray, figure: np.ndarray) -> float:
    """Fraction of (figure pixel, other pixel) pairs, over all such pairs, in which `pred` puts
    the figure nearer (a tie counts one half): the area under the ROC curve of "depth below a
    threshold" as a detector of the figure. For a photograph whose only ground truth is which
    pixels belong to an object in front of everything else. Invariant to any monotonic
    rescaling of `pred`: a constant map scores 0.5, one with the figure in front 1.0."""
    pred = np.asarray(pred, dtype=np.float64)
    figure = np.asarray(figure, dtype=bool)
    if pred.shape != figure.shape:
        raise ValueError(f"prediction {pred.shape} and figure mask {figure.shape} differ in shape")
    fig, ground = pred[figure], np.sort(pred[~figure])
    if fig.size == 0 or ground.size == 0:
        raise ValueError(f"the figure mask must hold some but not all pixels, got {fig.size}")
    if not (np.isfinite(fig).all() and np.isfinite(ground).all()):
        raise ValueError("the prediction holds non-finite depths")
    farther = ground.size - np.searchsorted(ground, fig, side="right")
    ties = np.searchsorted(ground, fig, side="right") - np.searchsorted(ground, fig, side="left")
    return float((farther + 0.5 * ties).sum() / (fig.size * ground.size))


MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

METRICS: dict[str, MetricFn] = {
    "abs_rel": abs_rel,
    "sq_rel": sq_rel,
    "rmse": rmse,
    "rmse_log": rmse_log,
    "log10": log10,
    "silog": silog,
    "mae": mae,
    "delta1": delta1,
    "delta2": delta2,
    "delta3": delta3,
    "delta1_bad": delta1_bad,
}

# Direction of improvement, used for ranking and report arrows.
HIGHER_IS_BETTER = frozenset({"delta1", "delta2", "delta3"})
