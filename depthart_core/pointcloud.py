"""Depth image + camera calibration -> an organized XYZRGB point cloud (no ROS imports).

The node's `depth/points` topic (sensor_msgs/PointCloud2) is built from these arrays; any caller
with a depth map and a CameraInfo-style calibration can use them too.

Which intrinsics project a pixel (`image`):
- "rectified" (the default, as `depth_image_proc` assumes): the image is already rectified, so
  the projection matrix P maps camera coordinates to pixels and D is ignored.
- "raw": the image is as the camera gave it, so each pixel is undistorted with K and D first
  ("plumb_bob" and "rational_polynomial" through `cv2.undistortPoints`, "equidistant" through
  `cv2.fisheye.undistortPoints`). A pixel no ray reaches under the model (a wide fisheye's
  corners past 90 degrees, beyond where a strong radial distortion folds back) gets a NaN ray:
  its undistorted ray, projected again through K and D, does not land on it, lands on the other
  side of the principal point, or lies past the fold (plumb_bob and rational_polynomial: the
  first radius where the radial curve r_d(r) stops growing, `_radial_fold`). Where OpenCV's
  solver stops short of a ray that does exist (OpenCV 4.8-4.12 at a strong barrel's corners,
  Ubuntu's python3-opencv among them) or answers past the fold (next to a pole of
  rational_polynomial's denominator, where no step moves it), Newton steps on the model's
  projection find the ray before that check, from OpenCV's answer or from the ray of the radial
  curve in the pixel's direction, whichever lands nearer; pixels outside the image circle of the
  radial curve are NaN without them.

A pixel becomes the point z * (x', y', 1), where (x', y') is its normalised ray and z its depth
(REP 118: the distance along the optical axis, not along the ray). Pixels whose depth is not a
positive finite number (REP 117's -inf / +inf / NaN) become NaN points, so the cloud stays
organized (height x width) with is_dense false, as `depth_image_proc` publishes it. The colour is
packed into one float32 field `rgb` as PCL and RViz read it (0x00RRGGBB).

`pinhole_p` makes a P from a horizontal field of view for images without a calibration, and
`write_ply` saves the valid points as a binary PLY (MeshLab, Open3D, CloudCompare read it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from depthart_core.fileutil import atomic_write

IMAGES = ("rectified", "raw")
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
# (name, byte offset) of each float32 field of one 16-byte point
POINT_FIELDS = (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))
POINT_STEP = 16
POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4, "itemsize": 16})
# 100 iterations: at 40 the solver stopped ~0.6 % short on strong (still invertible) barrels,
# whose corner rays then failed the reprojection check below
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)
# image="raw": an undistorted ray that lands farther than this from its pixel when projected
# again through K and D is no ray of that pixel (the model has none there): NaN
MAX_REPROJECTION_PX = 0.5
_FOLD_STEP = 1e-4  # relative outward step of a ray that tells which side of the fold it is on
# Newton refinement of the rays OpenCV's solver left short (`_refine_rays`): at most this many
# steps, each halved at most _NEWTON_HALVINGS times while it does not bring the ray's pixel nearer;
# a Jacobian by central differences of this step in normalised coordinates; done below _NEWTON_PX
_NEWTON_STEPS = 30
_NEWTON_HALVINGS = 8
_NEWTON_DIFF = 1e-6
_NEWTON_PX = 1e-9
# image="raw": a ray of OpenCV's that lands farther than this from its pixel is refined; a refined
# ray that lands farther did not converge (a pixel no ray reaches, whose steps only crept towards
# one) and is not used
_NEWTON_CONVERGED_PX = 1e-3
# and a step takes neither coordinate of a ray past this (89.94 degrees off the axis): a pixel
# beyond a fisheye's image circle has no ray, and Newton steps towards it run off to 90 degrees
_NEWTON_MAX_RAY = 1e3
# `_radial_fold` looks for the fold of the radial curve on a geometric grid of this many radii up
# to _NEWTON_MAX_RAY (a relative step of 1.4e-4), then bisects the step where it is
_FOLD_GRID = 100_000
# and a Newton step ends at most this far (relative) inside the fold
_FOLD_INSIDE = 1e-9
# `_radial_start` bisects r_d(r) = the pixel's distorted radius this many times (to ~1e-18 of the
# fold radius, 1e-15 of _NEWTON_MAX_RAY)
_RADIAL_BISECTIONS = 60
# project_rays: a ray shorter than this (normalised) is on the axis, its side of the centre moot
_ON_AXIS = 1e-9


def pixel_rays(
    height: int,
    width: int,
    k: Sequence[float],
    p: Sequence[float],
    d: Sequence[float] = (),
    distortion_model: str = "",
    stride: int = 1,
    image: str = "rectified",
) -> np.ndarray:
    """(ceil(height / stride), ceil(width / stride), 2) float32: the normalised ray (x/z, y/z) of
    every `stride`-th pixel, starting at pixel (0, 0). `k`, `p`, `d`: CameraInfo's flat lists or
    the matrices themselves (3x3 K, 3x4 P, 1xN D, as OpenCV returns them). Cached per calibration
    and size (keyed only by what the chosen projection reads: P for rectified, K, D and the model
    for raw). An all-zero D is no distortion, whatever the model is called."""
    if image not in IMAGES:
        raise ValueError(f"image must be one of {list(IMAGES)}, got {image!r}")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    raw = image == "raw"
    return _rays(
        int(height), int(width),
        _values(k) if raw else (),
        () if raw else _values(p),
        _values(d) if raw else (),
        distortion_model if raw else "", int(stride), image,
    )  # fmt: skip


def _values(x: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """The values of a calibration matrix or vector in row-major order, flat and hashable (the
    ray cache's key): K as 9 values or 3x3 (cv2.calibrateCamera), D as 5 or 1x5, P as 12 or
    3x4, a nested list or an array alike."""
    return tuple(np.asarray(x, dtype=np.float64).ravel().tolist())


@functools.lru_cache(maxsize=4)
def _rays(h, w, k, p, d, model, stride, image) -> np.ndarray:
    v_, u_ = np.mgrid[0:h:stride, 0:w:stride].astype(np.float64)
    if image == "rectified":
        if len(p) != 12:
            raise ValueError(f"P must have 12 values (3x4), got {len(p)}")
        # P = [fx 0 cx Tx; 0 fy cy Ty; 0 0 1 0]; Tx, Ty place a second stereo camera and do not
        # change this camera's rays (sensor_msgs/CameraInfo)
        fx, cx, fy, cy = p[0], p[2], p[5], p[6]
        _check_focal("P", fx, fy, cx, cy)
        x = (u_ - cx) / fx
        y = (v_ - cy) / fy
        return np.stack([x, y], axis=-1).astype(np.float32)
    if len(k) != 9:
        raise ValueError(f"K must have 9 values (3x3), got {len(k)}")
    K = np.asarray(k, dtype=np.float64).reshape(3, 3)
    _check_focal("K", K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    pts = np.stack([u_, v_], axis=-1).reshape(-1, 1, 2)
    D = np.asarray(d, dtype=np.float64)
    if not D.size or not np.any(D):
        norm = cv2.undistortPoints(pts, K, None)
    elif model in ("plumb_bob", "rational_polynomial"):
        if D.size not in (4, 5, 8, 12, 14):
            raise ValueError(f"{model} D must have 4, 5, 8, 12 or 14 values, got {D.size}")
        if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4.x spells the iterative form so
            norm = cv2.undistortPointsIter(pts, K, D, None, None, _UNDISTORT_CRITERIA)
        else:  # OpenCV 5 takes the criteria in undistortPoints
            norm = cv2.undistortPoints(pts, K, D, None, None, None, _UNDISTORT_CRITERIA)
    elif model == "equidistant":
        if D.size != 4:
            raise ValueError(f"equidistant D must have 4 values, got {D.size}")
        norm = cv2.fisheye.undistortPoints(pts, K, D.reshape(1, 4), criteria=_UNDISTORT_CRITERIA)
    else:
        raise ValueError(
            f"distortion model {model!r} is not supported for image=raw; "
            f"use one of {list(DISTORTION_MODELS)} or a rectified image"
        )
    rays_n2 = norm.reshape(-1, 2).astype(np.float64)
    if D.size and np.any(D):  # outside the model's domain the solvers return rays of other pixels
        px_n2 = pts.reshape(-1, 2)
        err_n = _reprojection_px(rays_n2, px_n2, K, D, model)
        # or stop short of the ray (OpenCV 4.8-4.12 at a strong barrel's corners): refined, and
        # the refined ray replaces OpenCV's where it lands on its pixel, inside the fold
        # (not equidistant: OpenCV's fisheye solver converges, and its misses are the pixels
        # past the image circle, a fisheye's corners, which no refinement reaches). A pixel
        # outside the radial curve's image circle has no ray to find: NaN without Newton steps
        if model != "equidistant":
            reach_n = _reachable(px_n2, K, D)
            err_n[~reach_n] = np.nan
            short_m = np.flatnonzero(~(err_n <= _NEWTON_CONVERGED_PX) & reach_n)
            if short_m.size:
                refined_m2 = _refine_rays(rays_n2[short_m], px_n2[short_m], K, D, model)
                err_m = _reprojection_px(refined_m2, px_n2[short_m], K, D, model)
                better_m = err_m <= MAX_REPROJECTION_PX  # NaN compares false
                rays_n2[short_m[better_m]] = refined_m2[better_m]
                err_n[short_m[better_m]] = err_m[better_m]
        rays_n2[~(err_n <= MAX_REPROJECTION_PX)] = np.nan
    rows, cols = u_.shape
    return rays_n2.reshape(rows, cols, 2).astype(np.float32)


def _check_focal(name: str, fx: float, fy: float, cx: float, cy: float) -> None:
    """ValueError unless the focal lengths are positive and finite and the centre is finite."""
    if not (0 < fx < math.inf and 0 < fy < math.inf):  # NaN compares false: refused too
        raise ValueError(
            f"{name} focal lengths must be positive and finite, got fx={fx:g} fy={fy:g}"
        )
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"{name} principal point must be finite, got cx={cx:g} cy={cy:g}")


def project_rays(rays_n2: np.ndarray, K: np.ndarray, D: np.ndarray, model: str) -> np.ndarray:
    """(n, 2) pixels where a camera of K, D and `model` sees the normalised rays (x/z, y/z)
    (cv2.projectPoints; cv2.fisheye.projectPoints for equidistant). NaN for a non-finite ray and
    for one past the fold of the model's radial curve, which the camera does not see there
    although the polynomial lands it on the image: a ray a little farther out lands nearer the
    centre, the ray lands on the other side of the principal point (mirrored, where r_d(r) < 0),
    or (plumb_bob, rational_polynomial) it is at least `_radial_fold`'s radius long."""
    ok = np.isfinite(rays_n2).all(axis=1)
    obj_n2 = np.where(ok[:, None], rays_n2, 0.0)
    px_n2 = _project(obj_n2, K, D, model)
    out_n2 = _project(obj_n2 * (1.0 + _FOLD_STEP), K, D, model)
    from_c_n2 = px_n2 - K[:2, 2]
    outward_n = np.sum((out_n2 - px_n2) * from_c_n2, axis=1)
    r_n = np.hypot(*obj_n2.T)
    # a ray off the axis (by more than rounding resolves) lands on its own side of the centre
    side_n = np.sum(from_c_n2 / K[[0, 1], [0, 1]] * obj_n2, axis=1)
    past_n = (outward_n < 0) | ((r_n > _ON_AXIS) & ~(side_n > 0))
    if model != "equidistant":
        past_n |= r_n >= _radial_fold(_d8(D))[0]
    px_n2[~ok | past_n] = np.nan
    return px_n2


def _d8(D: np.ndarray) -> tuple[float, ...]:
    """k1, k2, p1, p2, k3, k4, k5, k6 of an OpenCV D (4 to 14 values; those it lacks are 0)."""
    d = np.zeros(8)
    flat = np.asarray(D, dtype=np.float64).ravel()[:8]
    d[: flat.size] = flat
    return tuple(d.tolist())


@functools.lru_cache(maxsize=16)
def _radial_fold(d8: tuple[float, ...]) -> tuple[float, float]:
    """(r_fold, r_d(r_fold)) of OpenCV's radial curve r_d(r) = r (1 + k1 r^2 + k2 r^4 + k3 r^6) /
    (1 + k4 r^2 + k5 r^4 + k6 r^6) (`_d8`'s k1, k2, k3, k4, k5, k6): r_fold is the first radius
    of a normalised ray where r_d stops growing (d r_d / d r <= 0) or the denominator reaches 0;
    a ray that long or longer lands where a shorter one does, or mirrored. (inf, inf) where the
    curve grows up to _NEWTON_MAX_RAY. Searched on a geometric grid, then bisected."""
    k1, k2, _, _, k3, k4, k5, k6 = d8

    def folded(r: np.ndarray) -> np.ndarray:
        s = r * r
        n = 1.0 + s * (k1 + s * (k2 + s * k3))
        m = 1.0 + s * (k4 + s * (k5 + s * k6))
        n_s = k1 + s * (2.0 * k2 + 3.0 * s * k3)  # d n / d s
        m_s = k4 + s * (2.0 * k5 + 3.0 * s * k6)
        # d r_d / d r = (n m + 2 s (n_s m - n m_s)) / m^2
        return (m <= 0) | (n * m + 2.0 * s * (n_s * m - n * m_s) <= 0)

    with np.errstate(all="ignore"):
        grid = np.concatenate([[0.0], np.geomspace(1e-3, _NEWTON_MAX_RAY, _FOLD_GRID)])
        hits = np.flatnonzero(folded(grid))
        if not hits.size:
            return math.inf, math.inf
        lo, hi = grid[hits[0] - 1], grid[hits[0]]  # grid[0]: d r_d / d r = 1
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if not folded(np.array([mid]))[0] else (lo, mid)
        return float(hi), float(_radial_curve(np.array([lo]), d8)[0])


def _radial_curve(r: np.ndarray, d8: tuple[float, ...]) -> np.ndarray:
    """OpenCV's radial curve r_d(r) = r (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 +
    k6 r^6) of the normalised ray radii r (`_d8`'s k1, k2, k3, k4, k5, k6)."""
    k1, k2, _, _, k3, k4, k5, k6 = d8
    s = r * r
    return r * (1 + s * (k1 + s * (k2 + s * k3))) / (1 + s * (k4 + s * (k5 + s * k6)))


def _radial_start(pixels_n2: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray:
    """(n, 2) the ray of each pixel under the radial terms of D alone: in the direction of the
    pixel's distorted normalised coordinates, of the radius r below the fold (`_radial_fold`;
    below _NEWTON_MAX_RAY where the curve does not fold) where r_d(r) reaches the pixel's
    radius, found by bisection (the curve grows there). A pixel outside the curve's image circle
    gets a ray just inside the fold. Where OpenCV's answer is past the fold, next to a pole of
    the denominator, this is where Newton steps can start."""
    d8 = _d8(D)
    r_top = min(_radial_fold(d8)[0] * (1.0 - _FOLD_INSIDE), _NEWTON_MAX_RAY)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    xy_n2 = np.stack([(pixels_n2[:, 0] - cx) / fx, (pixels_n2[:, 1] - cy) / fy], axis=1)
    rho_n = np.hypot(*xy_n2.T)
    lo_n, hi_n = np.zeros_like(rho_n), np.full_like(rho_n, r_top)
    with np.errstate(all="ignore"):
        for _ in range(_RADIAL_BISECTIONS):
            mid_n = 0.5 * (lo_n + hi_n)
            below_n = _radial_curve(mid_n, d8) < rho_n
            lo_n = np.where(below_n, mid_n, lo_n)
            hi_n = np.where(below_n, hi_n, mid_n)
    scale_n = np.divide(lo_n, rho_n, out=np.zeros_like(rho_n), where=rho_n > 0)
    return xy_n2 * scale_n[:, None]


def _reachable(pixels_n2: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray:
    """(n,) bool: False for a pixel that no ray inside the fold lands within MAX_REPROJECTION_PX
    of: farther from the principal point (in normalised coordinates) than the radial curve's
    image circle r_d(r_fold) and the most the tangential and thin-prism terms move a ray inside
    the fold. True everywhere where the curve does not fold or a tilted sensor (tauX, tauY)
    moves the circle."""
    d = np.zeros(14)
    flat = np.asarray(D, dtype=np.float64).ravel()[:14]
    d[: flat.size] = flat
    r_fold, rd_fold = _radial_fold(_d8(d))
    if not math.isfinite(rd_fold) or np.any(d[12:]):
        return np.ones(len(pixels_n2), dtype=bool)
    p1, p2, s1, s2, s3, s4 = np.abs(d[[2, 3, 8, 9, 10, 11]])
    r2 = r_fold * r_fold
    # |(2 p1 x y + p2 (r^2 + 2 x^2), p1 (r^2 + 2 y^2) + 2 p2 x y)| <= 4 (|p1| + |p2|) r^2
    moved = 4.0 * (p1 + p2) * r2 + (s1 + s3) * r2 + (s2 + s4) * r2 * r2
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    limit = (rd_fold + moved + MAX_REPROJECTION_PX / min(fx, fy)) * (1.0 + 1e-9)
    return np.hypot((pixels_n2[:, 0] - cx) / fx, (pixels_n2[:, 1] - cy) / fy) <= limit


def _inside(rays_n2: np.ndarray, r_max: float) -> np.ndarray:
    """The rays, those longer than r_max shortened to it (their direction kept)."""
    r_n = np.hypot(*rays_n2.T)
    over = r_n > r_max  # never with r_max inf
    rays_n2 = rays_n2.copy()
    rays_n2[over] *= (r_max / r_n[over])[:, None]
    return rays_n2


def _project(rays_n2: np.ndarray, K: np.ndarray, D: np.ndarray, model: str) -> np.ndarray:
    """(n, 2) pixels of the finite normalised rays (x/z, y/z) under K, D and `model`, as OpenCV
    projects them (no fold check: `project_rays`)."""
    obj_n3 = np.ones((rays_n2.shape[0], 3))
    obj_n3[:, :2] = rays_n2
    zero = np.zeros(3)
    if model == "equidistant":
        D14 = np.asarray(D, dtype=np.float64).reshape(1, 4)
        return cv2.fisheye.projectPoints(obj_n3[None], zero, zero, K, D14)[0].reshape(-1, 2)
    D = np.asarray(D, dtype=np.float64)
    return cv2.projectPoints(obj_n3, zero, zero, K, D)[0].reshape(-1, 2)


def _refine_rays(
    rays_n2: np.ndarray, pixels_n2: np.ndarray, K: np.ndarray, D: np.ndarray, model: str
) -> np.ndarray:
    """(n, 2) the rays refined by damped Newton steps on the model's projection (`_project`, a
    central-difference Jacobian) so that they land on their pixels, starting from OpenCV's answer
    (from the pixel's distorted normalised coordinates where that is not finite). Vectorized over
    the rays; a step is halved while it does not bring its ray's pixel nearer, and a ray no step
    brings nearer stops where it is. Neither the start nor a step goes past the fold of the
    radial curve (`_radial_fold`: shortened to just inside it), where a ray lands mirrored or
    where a nearer one does. Where the ray of the radial curve in the pixel's direction
    (`_radial_start`) lands nearer than that start (OpenCV's answer past a pole of the
    denominator: shortened to just inside the fold, it lands ~1e16 px off and no step moves it),
    the steps start from that ray instead. NaN for a ray that then lands farther than
    _NEWTON_CONVERGED_PX from its pixel."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    r_max = _radial_fold(_d8(D))[0] * (1.0 - _FOLD_INSIDE)
    start_n2 = np.stack([(pixels_n2[:, 0] - cx) / fx, (pixels_n2[:, 1] - cy) / fy], axis=1)
    x_n2 = np.where(np.isfinite(rays_n2).all(axis=1)[:, None], rays_n2, start_n2)
    x_n2 = _inside(x_n2, r_max)
    with np.errstate(all="ignore"):
        res_n2 = _project(x_n2, K, D, model) - pixels_n2
        radial_n2 = _radial_start(pixels_n2, K, D)
        radial_res_n2 = _project(radial_n2, K, D, model) - pixels_n2
        # NaN compares false: a start that lands nowhere gives way to a radial one that lands
        nearer_n = ~(np.hypot(*res_n2.T) <= np.hypot(*radial_res_n2.T))
        nearer_n &= np.isfinite(radial_res_n2).all(axis=1)
        x_n2[nearer_n] = radial_n2[nearer_n]
        res_n2[nearer_n] = radial_res_n2[nearer_n]
        go = np.flatnonzero(np.isfinite(res_n2).all(axis=1))
        for _ in range(_NEWTON_STEPS):
            norm_m = np.hypot(*res_n2[go].T)
            go = go[norm_m > _NEWTON_PX]
            if not go.size:
                break
            x, r = x_n2[go], res_n2[go]
            h = _NEWTON_DIFF * np.maximum(1.0, np.abs(x))  # (m, 2): per coordinate
            cols = []
            for j in (0, 1):
                e = np.zeros_like(x)
                e[:, j] = h[:, j]
                diff = _project(x + e, K, D, model) - _project(x - e, K, D, model)
                cols.append(diff / (2.0 * h[:, j : j + 1]))
            (a, c), (b, d) = cols[0].T, cols[1].T  # J = [[a, b], [c, d]]
            det = a * d - b * c
            step = -np.stack([d * r[:, 0] - b * r[:, 1], a * r[:, 1] - c * r[:, 0]], axis=1)
            step /= det[:, None]
            norm_m = np.hypot(*r.T)
            todo = np.isfinite(step).all(axis=1)
            moved = np.zeros(go.size, dtype=bool)
            for _ in range(_NEWTON_HALVINGS + 1):
                idx = np.flatnonzero(todo)
                if not idx.size:
                    break
                cand = np.clip(x[idx] + step[idx], -_NEWTON_MAX_RAY, _NEWTON_MAX_RAY)
                cand = _inside(cand, r_max)
                cand_res = _project(cand, K, D, model) - pixels_n2[go[idx]]
                better = np.hypot(*cand_res.T) < norm_m[idx]  # NaN compares false
                hit = idx[better]
                x_n2[go[hit]] = cand[better]
                res_n2[go[hit]] = cand_res[better]
                moved[hit] = True
                todo[hit] = False
                step[idx] *= 0.5
            go = go[moved]  # a ray no step brought nearer stays where it is
        x_n2[~(np.hypot(*res_n2.T) <= _NEWTON_CONVERGED_PX)] = np.nan
    return x_n2


def _reprojection_px(
    rays_n2: np.ndarray, pixels_n2: np.ndarray, K: np.ndarray, D: np.ndarray, model: str
) -> np.ndarray:
    """(n,) distance in pixels from each pixel to its undistorted ray projected again through K and
    D; inf for a ray past the fold of the model's radial curve, NaN for a non-finite ray. Where no
    ray maps to a pixel (past a wide fisheye's 90 degrees, beyond where a strong radial
    polynomial folds back) the solvers still answer, with the ray of another pixel, often the
    mirrored one: projecting back shows it."""
    ok = np.isfinite(rays_n2).all(axis=1)
    px_n2 = project_rays(rays_n2, K, D, model)
    err_n = np.hypot(*(px_n2 - pixels_n2).T)
    err_n[ok & ~np.isfinite(err_n)] = np.inf
    return np.where(ok, err_n, np.nan)


def depth_to_points(
    depth_HW: np.ndarray, rays_hw2: np.ndarray, stride: int = 1, rgb_HW3: np.ndarray | None = None
) -> np.ndarray:
    """Depth (metres or relative units) -> (h, w) structured array of POINT_DTYPE: x, y, z in the
    depth's units in the optical frame (x right, y down, z forward) and packed `rgb` (0 where no
    image is given; `rgb_HW3` is HxWx3 uint8, the depth's size); NaN x, y, z where the depth is
    not positive and finite."""
    if depth_HW.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth_HW.shape}")
    z_hw = np.asarray(depth_HW[::stride, ::stride], dtype=np.float32)
    if z_hw.shape != rays_hw2.shape[:2]:
        raise ValueError(
            f"depth {depth_HW.shape} at stride {stride} gives {z_hw.shape}, "
            f"rays are {rays_hw2.shape[:2]}"
        )
    z_hw = np.where(np.isfinite(z_hw) & (z_hw > 0), z_hw, np.float32(np.nan))
    cloud = np.empty(z_hw.shape, dtype=POINT_DTYPE)
    cloud["x"] = rays_hw2[..., 0] * z_hw
    cloud["y"] = rays_hw2[..., 1] * z_hw
    cloud["z"] = z_hw
    if rgb_HW3 is None:
        cloud["rgb"] = 0.0
    else:
        # as runtime.preprocess.validate_rgb (a higher layer): a float [0, 1] image packed as
        # black, a uint16 one spilled into the byte above red
        if not isinstance(rgb_HW3, np.ndarray):
            raise TypeError(
                f"rgb must be a numpy array (HxWx3 uint8), got {type(rgb_HW3).__name__}"
            )
        if rgb_HW3.dtype != np.uint8:
            raise TypeError(f"rgb must have dtype uint8 (0-255 RGB), got {rgb_HW3.dtype}")
        if rgb_HW3.shape[:2] != depth_HW.shape or rgb_HW3.ndim != 3 or rgb_HW3.shape[2] != 3:
            raise ValueError(f"rgb must be {depth_HW.shape}x3, got {rgb_HW3.shape}")
        c = np.asarray(rgb_HW3[::stride, ::stride], dtype=np.uint32)
        packed = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
        cloud["rgb"] = packed.view(np.float32)
    return cloud


def pinhole_p(height: int, width: int, hfov_deg: float) -> list[float]:
    """A CameraInfo-style P (12 values) for an ideal camera with this horizontal field of view:
    square pixels, principal point at the image centre."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]


def write_ply(path: str | Path, cloud: np.ndarray) -> int:
    """Write the valid points of a POINT_DTYPE cloud as binary little-endian PLY (x y z float,
    red green blue uchar); returns how many were written."""
    flat = cloud.reshape(-1)
    keep = flat[np.isfinite(flat["z"])]
    rgb = keep["rgb"].view(np.uint32)
    rows = np.empty(keep.shape[0], dtype=[("xyz", "<f4", 3), ("c", "u1", 3)])
    rows["xyz"] = np.stack([keep["x"], keep["y"], keep["z"]], axis=1)
    rows["c"] = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=1)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment depthart_core.pointcloud: optical frame "
        f"(x right, y down, z forward)\nelement vertex {len(rows)}\nproperty float x\n"
        "property float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
        "property uchar blue\nend_header\n"
    )
    atomic_write(path, header.encode("ascii") + rows.tobytes())
    return len(rows)
