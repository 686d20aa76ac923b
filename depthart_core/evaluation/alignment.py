"""Aligning a relative prediction to metric ground truth, on valid pixels only.

- `median_scale`: s = median(g / p), prediction multiplied by s. This is the DepthART paper's
  alignment (sec. 6; DepthART `mde/capsules/aligner/aligners_fn.py::align_si_l1`), with two
  differences that matter only where the prediction is 0 somewhere: the authors' median runs over
  every valid pixel (g / 0 = inf included, which pulls s up) and torch.median takes the lower of
  the two middle values, where this one skips pixels with p <= 0 and np.median averages the two.
  Note that Monodepth2-style code uses median(g) / median(p) instead; the two differ.
- `lstsq_scale`: s minimising sum (s p - g)^2, i.e. s = <p, g> / <p, p>.
- `lstsq_scale_shift`: (s, t) minimising sum (s p + t - g)^2 (MiDaS / Marigold `alignment.py`
  `align_depth_least_square`). In disparity space the same fit runs on 1/g, the prediction is
  taken as a disparity (or inverted first when it is a depth), and the fitted disparity is clamped
  to `MIN_DISPARITY` before inverting back to depth (as Marigold clips at 1e-3).

Each fit also has a `_pairs` form taking the valid pixels as `masked_pairs` returns them, and
`fit_alignment` / `apply_alignment` split `align` into the fit on those vectors and its
application to a map or a vector, so that `evaluate_image` extracts an image's pixels only once.

Every function raises `ValueError` when no usable pixel remains (empty mask, or for the median no
positive prediction), naming what was empty. For a constant prediction the scale-and-shift system
is rank-deficient; `numpy.linalg.lstsq` then returns its minimum-norm solution, which is finite.
"""

from __future__ import annotations

import numpy as np

from depthart_core.evaluation.metrics import PRED_EPS, masked_pairs

MIN_DISPARITY = 1e-3  # 1/m; caps the depth recovered from a fitted disparity at 1 km

ALIGNMENTS = (
    "none",
    "median_scale",
    "lstsq_scale",
    "lstsq_scale_shift",
    "lstsq_scale_shift_disparity",
)


def median_scale_pairs(p: np.ndarray, g: np.ndarray) -> float:
    """median(g / p) over the pixels where the prediction is positive; `p`, `g` the valid pixels
    as `masked_pairs` returns them."""
    pos = p > 0
    if not pos.any():
        raise ValueError(f"median scale: none of the {p.size} valid predicted pixels is > 0")
    return float(np.median(g[pos] / p[pos]))


def lstsq_scale_pairs(p: np.ndarray, g: np.ndarray) -> float:
    """argmin_s sum (s p - g)^2 over the pixel vectors `p`, `g`."""
    pp = float(np.dot(p, p))
    if pp == 0.0:
        raise ValueError(
            f"least-squares scale: the prediction is zero on all {p.size} valid pixels"
        )
    return float(np.dot(p, g) / pp)


def lstsq_scale_shift_pairs(p: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """argmin_(s, t) sum (s p + t - g)^2 over the pixel vectors `p`, `g`."""
    A_N2 = np.stack([p, np.ones_like(p)], axis=1)  # (N, 2): one row [p_i, 1] per pixel
    (s, t), *_ = np.linalg.lstsq(A_N2, g, rcond=None)
    return float(s), float(t)


def disparity_fit_pairs(p: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """(s, t) fitting s / max(p, PRED_EPS) + t to 1 / g over the pixels predicted at depth > 0, for
    depth vectors `p`, `g` that `masked_pairs` has checked (as `lstsq_scale_shift_disparity`)."""
    fit = p > 0
    if not fit.any():
        raise ValueError(f"disparity fit: none of the {p.size} valid pixels is > 0")
    disp = 1.0 / np.maximum(p[fit], PRED_EPS)
    g_disp = 1.0 / g[fit]
    bad = int((~np.isfinite(g_disp) | (g_disp <= 0)).sum())
    if bad:  # a ground truth so near 0 that its disparity overflows
        raise ValueError(f"{bad} of {g_disp.size} valid ground-truth pixels are not finite and > 0")
    return lstsq_scale_shift_pairs(disp, g_disp)


def _depth_from_disparity(disp: np.ndarray, s: float, t: float) -> np.ndarray:
    return 1.0 / np.maximum(s * disp + t, MIN_DISPARITY)


def fit_alignment(p: np.ndarray, g: np.ndarray, method: str) -> tuple[float, float]:
    """(scale, shift) of one of `ALIGNMENTS`, fitted on the valid pixels `p`, `g` as
    `masked_pairs` returns them; `apply_alignment` maps a prediction with them."""
    if method == "none":
        return 1.0, 0.0
    if method == "median_scale":
        return median_scale_pairs(p, g), 0.0
    if method == "lstsq_scale":
        return lstsq_scale_pairs(p, g), 0.0
    if method == "lstsq_scale_shift":
        return lstsq_scale_shift_pairs(p, g)
    if method == "lstsq_scale_shift_disparity":
        return disparity_fit_pairs(p, g)
    raise ValueError(f"unknown alignment {method!r}; choose one of {ALIGNMENTS}")


def apply_alignment(pred: np.ndarray, method: str, scale: float, shift: float) -> np.ndarray:
    """The float64 aligned depth of `pred` (a map or a pixel vector) under `method` with the
    fitted `scale` and `shift`; element by element the same values `align` returns."""
    pred64 = np.asarray(pred, dtype=np.float64)
    if method == "none":
        return pred64
    if method in ("median_scale", "lstsq_scale"):
        return pred64 * scale
    if method == "lstsq_scale_shift":
        return pred64 * scale + shift
    if method == "lstsq_scale_shift_disparity":
        return _depth_from_disparity(1.0 / np.maximum(pred64, PRED_EPS), scale, shift)
    raise ValueError(f"unknown alignment {method!r}; choose one of {ALIGNMENTS}")


def median_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """median(g / p) over valid pixels where the prediction is positive."""
    return median_scale_pairs(*masked_pairs(pred, gt, valid))


def lstsq_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """argmin_s sum (s p - g)^2 over valid pixels."""
    return lstsq_scale_pairs(*masked_pairs(pred, gt, valid))


def lstsq_scale_shift(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """argmin_(s, t) sum (s p + t - g)^2 over valid pixels."""
    return lstsq_scale_shift_pairs(*masked_pairs(pred, gt, valid))


def lstsq_scale_shift_disparity(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, pred_is_disparity: bool = False
) -> tuple[np.ndarray, float, float]:
    """Fit s * disp(p) + t to 1/g; return (aligned depth, s, t). `valid` must exclude g <= 0.
    Pixels predicted at depth <= 0 are left out of the fit (as Marigold's `pred > 0` mask; their
    disparity of 1/1e-6 would dominate it) and scored like the rest."""
    pred = np.asarray(pred, dtype=np.float64)
    disp = pred if pred_is_disparity else 1.0 / np.maximum(pred, PRED_EPS)
    gt = np.asarray(gt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        gt_disp = np.where(valid, 1.0 / gt, 0.0)
    fit = valid if pred_is_disparity else valid & (pred > 0)
    if np.any(valid) and not fit.any():  # (an empty mask is named by lstsq_scale_shift)
        raise ValueError(f"disparity fit: none of the {int(np.sum(valid))} valid pixels is > 0")
    s, t = lstsq_scale_shift(disp, gt_disp, fit)
    return _depth_from_disparity(disp, s, t), s, t


def align(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, method: str
) -> tuple[np.ndarray, float, float]:
    """Apply one of `ALIGNMENTS`; return (aligned float64 depth, scale, shift)."""
    pred64 = np.asarray(pred, dtype=np.float64)
    if method == "none":
        masked_pairs(pred, gt, valid)  # same input checks as the other methods
        return pred64, 1.0, 0.0
    if method == "median_scale":
        s = median_scale(pred, gt, valid)
        return pred64 * s, s, 0.0
    if method == "lstsq_scale":
        s = lstsq_scale(pred, gt, valid)
        return pred64 * s, s, 0.0
    if method == "lstsq_scale_shift":
        s, t = lstsq_scale_shift(pred, gt, valid)
        return pred64 * s + t, s, t
    if method == "lstsq_scale_shift_disparity":
        return lstsq_scale_shift_disparity(pred, gt, valid)
    raise ValueError(f"unknown alignment {method!r}; choose one of {ALIGNMENTS}")
