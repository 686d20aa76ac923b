"""Relative -> metric depth from sparse metric cues (LiDAR projected into the image, RGB-D).

DepthART's relative depth is proportional to depth (d / q98(d) of the scene, not inverse depth), so
one positive scale per frame maps it to metres; `scale_shift` also fits an offset. Both fits are
robust: the scale is the median of the per-point ratios metric / relative (median-scaling as in
Eigen et al. 2014 and the Marigold evaluation's alignment), and scale-and-shift starts from a
Theil-Sen line and refines it by least squares on the inliers (|residual| <= 3 robust sigmas).

A fit that would flatten the scene is refused (the caller falls back to relative output and reports
the reason), with checks relative to the data rather than absolute thresholds: over the overlap,
the cue and the prediction must each spread by at least `MIN_SPREAD` of their median (a line
through a constant is a constant: a constant cue once gave scale 5e-16, shift 2.0, so every pixel
became 2.0 m); the scale must lie within `MAX_SCALE_FACTOR`x of the median ratio metric / relative;
and scale-and-shift, which has one more parameter, must fit better than the median-ratio scale on
the same points. A line that does not earn its shift is not a refusal of the cue: when the
median-ratio scale itself fits the cue (median relative error at most `MAX_RATIO_ERROR`), that
scale is returned (mode "scale"), so a good cue that needs no shift keeps the output in metres
instead of flipping it to relative on float noise. (With most cue points wrong no check can tell
the true line from a chance one; the fits are robust up to about half outliers, see the tests.)

Also here: `resample_sparse` moves sparse points onto a differently sized depth map without
interpolating between them, and `StampMatcher` pairs a frame with the sparse cue nearest in stamp.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

FIT_MODES: tuple[str, ...] = ("scale", "scale_shift")
_MAX_THEIL_SEN_POINTS = 200  # 19,900 pairs
_REL_EPS = 1e-6
MIN_SPREAD = 0.05  # (q90 - q10) / median over the overlap, for cue and prediction (scale_shift)
MAX_SCALE_FACTOR = 10.0  # scale within [r / 10, 10 r], r = median(metric / relative)
LINE_GAIN = 0.05  # scale-and-shift must beat the median ratio's residual by 5 % to be used
MAX_RATIO_ERROR = 0.15  # median |r * rel - metric| / metric for the median ratio to stand in
EXACT_LINE_ERROR = 1e-3  # a line within 0.1 % median error fits the cue: no comparison needed


@dataclass(frozen=True)
class ScaleFit:
    """metric = scale * relative + shift, fitted on `n_points` overlapping pixels."""

    scale: float
    shift: float
    mode: str
    n_points: int
    n_inliers: int
    abs_rel: float  # median |fit - metric| / metric over the inliers

    def apply(self, relative: np.ndarray) -> np.ndarray:
        """Relative depth -> metres (float32). A finite relative depth whose metres come out
        <= 0 (a scale_shift fit with a negative shift, at the nearest pixels) is -inf, REP 117's
        "closer than measurable", not NaN ("no return"), which a costmap would ignore; a
        non-finite relative depth stays NaN."""
        rel = np.asarray(relative, dtype=np.float32)
        out = rel * np.float32(self.scale) + np.float32(self.shift)
        with np.errstate(invalid="ignore"):
            out[~np.isfinite(rel)] = np.nan
            out[np.isfinite(rel) & ~(out > 0)] = -np.inf
        return out


def _check_metres(name: str, depth: np.ndarray) -> None:
    """TypeError unless `depth` holds floats (metres): an integer depth image is millimetres
    (REP 118's 16UC1), and read as metres it gave a fit 1000x off with status "ok"."""
    dtype = np.asarray(depth).dtype
    if np.issubdtype(dtype, np.integer):
        raise TypeError(
            f"{name} must be float metres, got dtype {dtype}: an integer depth is millimetres "
            "(REP 118 16UC1); pass depth / 1000.0 in metres, 0 or NaN where there is no return"
        )
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"{name} must be float metres (0 or NaN where there is no return), got dtype {dtype}"
        )


def _robust_sigma(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median of pairwise slopes on an evenly spaced subset; intercept = median(y - slope x)."""
    if x.size > _MAX_THEIL_SEN_POINTS:
        pick = np.linspace(0, x.size - 1, _MAX_THEIL_SEN_POINTS).astype(np.int64)
        xs, ys = x[pick], y[pick]
    else:
        xs, ys = x, y
    i, j = np.triu_indices(xs.size, k=1)
    dx = xs[j] - xs[i]
    keep = np.abs(dx) > _REL_EPS
    slope = float(np.median((ys[j] - ys[i])[keep] / dx[keep])) if keep.any() else 0.0
    return slope, float(np.median(y - slope * x))


def _fit_points(rel: np.ndarray, met: np.ndarray, mode: str) -> tuple[float, float, np.ndarray]:
    """(scale, shift, inlier mask) for 1-D arrays of overlapping relative/metric values."""
    if mode == "scale":
        log_ratio = np.log(met / rel)
        scale = float(np.exp(np.median(log_ratio)))
        dev = np.abs(log_ratio - np.log(scale))
        inliers = dev <= max(3.0 * _robust_sigma(log_ratio), 1e-3)
        return scale, 0.0, inliers
    scale, shift = _theil_sen(rel, met)
    inliers = np.ones(rel.size, dtype=bool)
    for _ in range(3):
        res = met - (scale * rel + shift)
        inliers = np.abs(res) <= max(3.0 * _robust_sigma(res), 1e-6 * float(np.median(met)))
        if inliers.sum() < 2 or np.ptp(rel[inliers]) <= _REL_EPS:
            break
        A = np.stack([rel[inliers], np.ones(int(inliers.sum()))], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(A, met[inliers], rcond=None)
        scale, shift = float(scale), float(shift)
    return scale, shift, inliers


def fit_metric_scale(
    relative: np.ndarray,
    metric: np.ndarray,
    mode: str = "scale",
    min_points: int = 20,
    valid: np.ndarray | None = None,
) -> tuple[ScaleFit | None, str]:
    """Fit `metric ~ scale * relative (+ shift)` on the pixels valid in both maps.

    `metric` is HxW float metres with NaN (or <= 0) where there is no cue (an integer map is
    refused: a uint16 depth is millimetres); `relative` is the model's HxW output. Returns
    (fit, "ok"), or (None, reason) when the fit has too few points or is degenerate, so the
    caller can fall back to relative output and report why.
    """
    _check_metres("metric", metric)
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}; use one of {FIT_MODES}")
    if relative.shape != metric.shape:
        raise ValueError(f"relative {relative.shape} and metric {metric.shape} differ in shape")
    if min_points < 2:
        raise ValueError(f"min_points must be >= 2, got {min_points}")
    with np.errstate(invalid="ignore"):
        both = np.isfinite(relative) & (relative > _REL_EPS) & np.isfinite(metric) & (metric > 0)
    if valid is not None:
        both &= valid.astype(bool)
    n = int(both.sum())
    if n < min_points:
        return None, f"too few overlapping valid points: {n} < min_points {min_points}"
    rel = relative[both].astype(np.float64)
    met = metric[both].astype(np.float64)
    if mode == "scale_shift":
        for name, x in (("sparse depth", met), ("relative depth", rel)):
            if _spread(x) < MIN_SPREAD:
                return None, (
                    f"{name} is (nearly) constant over the sparse points (spread "
                    f"{_spread(x):.3g} < {MIN_SPREAD}); cannot fit a shift, use mode 'scale'"
                )
    scale, shift, inliers = _fit_points(rel, met, mode)
    if not np.isfinite(scale) or not np.isfinite(shift) or scale <= 0:
        return None, f"fit is not usable (scale {scale:.4g}, shift {shift:.4g})"
    if mode == "scale_shift":
        reason = _implausible(rel, met, scale, shift)
        if reason:
            ratio_fit = _median_ratio_instead(rel, met, min_points)
            if ratio_fit is None:
                return None, reason
            return ratio_fit, "ok"
    n_in = int(inliers.sum())
    if n_in < min_points:
        return None, f"too few inliers: {n_in} of {n} points < min_points {min_points}"
    abs_rel = float(np.median(np.abs(scale * rel[inliers] + shift - met[inliers]) / met[inliers]))
    return ScaleFit(scale, shift, mode, n, n_in, abs_rel), "ok"


def _median_ratio_instead(rel: np.ndarray, met: np.ndarray, min_points: int) -> ScaleFit | None:
    """The median-ratio fit of the same points when it fits them (median relative error at most
    `MAX_RATIO_ERROR` and enough inliers), else None: the cue follows the prediction up to a scale,
    it just needs no shift."""
    scale, _, inliers = _fit_points(rel, met, "scale")
    err = np.abs(scale * rel - met) / met
    n_in = int(inliers.sum())
    if float(np.median(err)) > MAX_RATIO_ERROR or n_in < min_points:
        return None
    return ScaleFit(scale, 0.0, "scale", rel.size, n_in, float(np.median(err[inliers])))


def _spread(x: np.ndarray) -> float:
    """Relative spread (q90 - q10) / median: 0 for a constant, scale-free."""
    q10, q50, q90 = np.percentile(x, [10, 50, 90])
    return float((q90 - q10) / q50) if q50 > 0 else 0.0


def _implausible(rel: np.ndarray, met: np.ndarray, scale: float, shift: float) -> str | None:
    """Why a scale-and-shift fit must not be used, judged against the median-ratio fit on the
    same points; None when it is plausible."""
    ratio = float(np.median(met / rel))
    if not ratio / MAX_SCALE_FACTOR <= scale <= ratio * MAX_SCALE_FACTOR:
        return (
            f"fit is not usable: scale {scale:.4g} is more than {MAX_SCALE_FACTOR:g}x away from "
            f"the median ratio {ratio:.4g} (shift {shift:.4g})"
        )
    err_line = float(np.median(np.abs(scale * rel + shift - met) / met))
    err_ratio = float(np.median(np.abs(ratio * rel - met) / met))
    if err_line > EXACT_LINE_ERROR and err_line > err_ratio * (1 - LINE_GAIN):
        return (
            f"fit is not usable: scale-and-shift residual {err_line:.4g} is not {LINE_GAIN:.0%} "
            f"below the median-ratio scale's {err_ratio:.4g}"
        )
    return None


def resample_sparse(sparse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Move every point of an HxW sparse map of float metres (a positive finite value; NaN, 0 or
    less is no return, as `fit_metric_scale` reads it) onto a `shape` map, NaN elsewhere: to the
    output pixel that contains the point's centre; no interpolation between points. Where
    several points land on one pixel the last one in row-major order wins."""
    _check_metres("sparse", sparse)
    h0, w0 = sparse.shape
    h1, w1 = shape
    out = np.full(shape, np.nan, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        # a map that marks "no return" with 0 (16UC1, image_to_depth) must not move its zeros:
        # they would overwrite the few real points that share an output pixel with them
        ys, xs = np.nonzero(np.isfinite(sparse) & (sparse > 0))
    y1 = np.clip(np.floor((ys + 0.5) * (h1 / h0)).astype(np.int64), 0, h1 - 1)
    x1 = np.clip(np.floor((xs + 0.5) * (w1 / w0)).astype(np.int64), 0, w1 - 1)
    out[y1, x1] = sparse[ys, xs]
    return out


# the next item of a source is expected no sooner than this share of its usual spacing after the
# newest (a jittery driver comes a little early): a nearer item than that ends a wait
NEXT_ITEM_SHARE = 0.75


class StampMatcher:
    """Stamped items kept for `span_s` seconds of stamps behind the newest (at most `maxlen` of
    them, a memory bound); `nearest` returns the one closest to a stamp within a tolerance.

    The frame that looks an item up does so after its inference, which can take longer than a
    fixed count of a fast source lasts (100 messages of a 250 Hz IMU are 0.4 s): the span is in
    time so that a slow frame still finds the IMU or cue stamped with it. `dropped_near` says
    when the item a stamp wanted may have been dropped, so the reason given is the buffer's,
    not a missing source. A stamp more than `span_s` behind the newest starts the buffer over
    (the clock went back: a looped bag, a simulator reset). Thread-safe (filled by a
    subscription callback, read by the inference worker)."""

    def __init__(self, maxlen: int = 10, span_s: float = math.inf) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        if not span_s > 0.0:  # NaN fails too
            raise ValueError(f"span_s must be > 0 seconds, got {span_s}")
        self.maxlen, self.span_s = maxlen, span_s
        self._items: deque[tuple[int, Any]] = deque()
        self._dropped_max_ns: int | None = None  # the newest stamp dropped so far
        self._dropped_min_ns: int | None = None  # and the oldest
        self._newest_ns: int | None = None
        self._cv = threading.Condition()
        self._closed = False

    def add(self, stamp_ns: int, item: Any) -> None:
        with self._cv:
            stamp_ns = int(stamp_ns)
            if self._newest_ns is not None and self._newest_ns - stamp_ns > self.span_s * 1e9:
                # the clock went back (a looped bag, a simulator reset): a new stream starts,
                # else every item of it would be evicted against the old stream's newest stamp
                self._items.clear()
                self._newest_ns = self._dropped_max_ns = self._dropped_min_ns = None
            self._items.append((stamp_ns, item))
            self._cv.notify_all()
            newest = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
            self._newest_ns = newest
            while len(self._items) > self.maxlen or (
                len(self._items) > 1 and newest - self._items[0][0] > self.span_s * 1e9
            ):
                dropped, _ = self._items.popleft()
                prev = self._dropped_max_ns
                self._dropped_max_ns = dropped if prev is None else max(prev, dropped)
                low = self._dropped_min_ns
                self._dropped_min_ns = dropped if low is None else min(low, dropped)

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> Any | None:
        with self._cv:
            return self._nearest(stamp_ns, tolerance_ns)

    def _nearest(self, stamp_ns: int, tolerance_ns: int) -> Any | None:
        best = min(self._items, key=lambda it: abs(it[0] - stamp_ns), default=None)
        if best is None or abs(best[0] - stamp_ns) > tolerance_ns:
            return None
        return best[1]

    def wait_nearest(self, stamp_ns: int, tolerance_ns: int, deadline: float) -> Any | None:
        """`nearest`, waiting until `deadline` (time.monotonic()) for the item of this stamp to
        arrive (a cue projected from a scan comes after its image). Items come in stamp order,
        so the wait ends once none nearer can follow: an item stamped at or after this stamp
        has come, or the best one so far is nearer than the next item can be (the newest plus
        `NEXT_ITEM_SHARE` of the items' usual spacing). An older item within the tolerance
        does not end it by itself: at 30 Hz that is the previous frame's cue, while its own is
        still coming. A stamp more than `span_s` behind the newest waits too: it is a new
        stream's (a looped bag) until its first item starts the buffer over."""
        with self._cv:

            def settled() -> bool:
                newest = self._newest_ns
                if self._closed:
                    return True
                if newest is None or newest - stamp_ns > self.span_s * 1e9:
                    return False
                if newest >= stamp_ns:
                    return True
                period = self._spacing_ns()
                best = min(abs(t - stamp_ns) for t, _ in self._items)
                return period is not None and best <= newest + NEXT_ITEM_SHARE * period - stamp_ns

            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._cv.wait_for(settled, timeout=remaining)
            return self._nearest(stamp_ns, tolerance_ns)

    def _spacing_ns(self) -> float | None:
        """The median stamp spacing of the last items kept (None with fewer than two)."""
        stamps = [t for t, _ in list(self._items)[-9:]]
        steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a]
        return float(np.median(steps)) if steps else None

    def close(self) -> None:
        """End any wait now (node shutdown)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def dropped_near(self, stamp_ns: int, tolerance_ns: int) -> bool:
        """Whether an item within the tolerance of this stamp may have been dropped: the stamp
        lies in (or within the tolerance of) the span of stamps dropped so far. A stamp before
        every item ever kept (a source on a clock ahead of the frames') is missing, not dropped."""
        with self._cv:
            low, high = self._dropped_min_ns, self._dropped_max_ns
        if low is None or high is None:
            return False
        return low - tolerance_ns <= stamp_ns <= high + tolerance_ns

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)
