"""iBims-1 planarity errors pe-fla and pe-ori (Koch et al., ECCV-W 2018, Sec. 4.2).

As the official iBims-1 evaluation (`evaluate_ibims_error_metrics.compute_planarity_error`, also
used by DepthART's `mde/capsules/meter/ibims_metrics.py`): for every annotated plane (labels 1..n
of the table, floor and wall masks, restricted to valid ground truth) covering at least 5% of a
640 x 480 image, the prediction is scaled by median(gt) / median(pred) over the plane, back-
projected with the calibration (1-based pixel coordinates), and a plane is fitted by PCA. pe-fla
is the standard deviation of the points' distances to that plane, in cm; pe-ori is the angle in
degrees between its normal and the annotated normal (columns 4:7 of the plane's parameter row).
A dataset's value is the mean over all planes of all images.
"""

from __future__ import annotations

import math

import numpy as np

MIN_PLANE_SHARE = 0.05  # of 640 x 480 pixels, the official threshold
PLANE_TYPES = ("table", "floor", "wall")


def plane_errors(
    gt: np.ndarray,
    pred: np.ndarray,
    valid: np.ndarray,
    calib: tuple[float, float, float, float],
    labels: np.ndarray,
    params: np.ndarray,
) -> tuple[list[float], list[float]]:
    """(pe-fla per plane in cm, pe-ori per plane in degrees); NaN for planes too small to score."""
    fx, fy, cx, cy = calib
    h, w = gt.shape
    c, r = np.meshgrid(np.arange(1, w + 1), np.arange(1, h + 1))
    fla, ori = [], []
    for j in range(params.shape[0]):
        m = (labels == j + 1) & valid & (pred > 0) & (gt > 0)
        if m.sum() / (640.0 * 480.0) < MIN_PLANE_SHARE:
            fla.append(math.nan)
            ori.append(math.nan)
            continue
        d = pred[m] * (np.median(gt[m]) / np.median(pred[m]))
        pts_N3 = np.stack([(c[m] - cx) * d / fx, d, -(r[m] - cy) * d / fy], axis=1)
        centred = pts_N3 - pts_N3.mean(axis=0)
        normal = np.linalg.svd(centred, full_matrices=False)[2][2]  # least-variance direction
        fla.append(float(np.std(centred @ normal) * 100.0))
        n_gt = np.asarray(params[j, 4:7], dtype=np.float64)
        if normal @ n_gt < 0:
            normal = -normal
        ori.append(math.degrees(math.atan2(np.linalg.norm(np.cross(n_gt, normal)), n_gt @ normal)))
    return fla, ori


def planarity_errors(
    gt: np.ndarray,
    pred: np.ndarray,
    valid: np.ndarray,
    calib: tuple[float, float, float, float],
    planes: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[list[float], list[float]]:
    """All planes of one image: `planes[type] = (label map, (n, 7) parameters)`."""
    fla, ori = [], []
    for kind in PLANE_TYPES:
        if kind in planes:
            f, o = plane_errors(gt, pred, valid, calib, *planes[kind])
            fla += f
            ori += o
    return fla, ori
