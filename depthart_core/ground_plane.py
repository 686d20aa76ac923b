"""Relative -> metric depth from the floor and the camera's known height (no depth sensor).

DepthART's relative depth is proportional to depth (d / q98(d), one scale and no shift), so the
floor back-projected from it is the true floor shrunk by one factor. Fitting a plane to it and
dividing the camera's height above the floor (a robot's URDF knows it) by the plane's distance
from the camera recovers that factor: metres = scale * relative, scale = camera height / distance.

Steps, each a function here (numpy only; the node, the CLI and the evaluation call them):
1. back-project the depth through a 3x3 K or a 3x4 P (`depthart_core.pointcloud`, as
   `depth/points` does; the image is taken as rectified, so P's rays are used);
2. keep the candidate floor points: valid, in the lower `floor_region` of the image rows, and
   below the camera along the expected up;
3. RANSAC (fixed seed, so a frame always gives the same fit) for the plane with the most
   inliers, |n.p + d| <= inlier_threshold * d: a depth error of a fraction e moves a floor point
   off the plane by e * d, whatever its distance, so the threshold is a relative depth error;
   then a least-squares refit (SVD) on the inliers;
4. guards, each returning a reason instead of a scale: too few candidate points (no floor in
   view), a dominant plane whose normal is far from up (a wall, a ramp, an occluder), too few
   inliers, a scale outside a plausible range;
5. `ScaleSmoother`: the median of the last accepted scales; a jump beyond `jump_ratio` is held off
   until it persists for `jump_persist` frames (and after `jump_persist` frames in a row without
   a fit the memory is stale: the next fit starts over). The relative depth's unit is each
   frame's own (the codec divides by that frame's q98), so the unit moves as the view does:
   turning from a long aisle to a near wall shrinks it. `GroundPlaneScale` therefore carries the
   past scales into the current frame's unit before the median (`frame_units_ratio`: the median
   ratio of the previous relative depth to this one, pixel by pixel). BENCHMARKS 10 measures
   what that buys;
6. with a measured up in the frame (an IMU's attitude) and `tilt` > 0, the depth is also
   straightened, not only scaled (`floor_tilt`, `apply_floor_scale`): the model's floor is often
   tilted a few degrees from the true one, and so is the rest of its scene, as if it had guessed
   the camera's pitch wrong. A plane's inverse depth is linear in the ray, so adding
   `r . t` to every pixel's inverse depth, with t = tilt * (n - up) / d, turns the fitted floor
   (n, d) toward the measured up by the share `tilt` and keeps every pixel on its own ray. The
   share is lowered for a frame where the floor's own points would move by more than 2x, and the
   correction factor of every pixel is clipped to the range it takes on the floor's inliers.

Frames: the REP 103 optical frame (x right, y down, z forward). The up prior is the world's up seen
from a camera with REP 103 body pitch (positive = nose down) and roll (positive = right side
down): up = (-sin(roll) cos(pitch), -cos(roll) cos(pitch), -sin(pitch)). The pitch need not be
known: the fitted normal carries it, and `max_normal_angle_deg` is the tolerance around the prior.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from depthart_core.pointcloud import depth_to_points, pinhole_p, pixel_rays

REASON_CODES = ("ok", "no_floor", "normal_far_from_up", "few_inliers", "scale_out_of_range")
NORMALS = ("fit", "prior")


def check_camera_height(value: object) -> float:
    """The camera height in metres as a float; ValueError naming the value unless finite and
    positive (at start-up and whenever a parameter changes)."""
    try:
        h = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"camera height must be a number of metres, got {value!r}") from None
    if not math.isfinite(h) or h <= 0.0:
        raise ValueError(f"camera height must be finite and > 0 metres, got {value!r}")
    return h


@dataclass(frozen=True)
class GroundPlaneConfig:
    """Ground-plane scale settings; lengths in metres, angles in degrees."""

    camera_height_m: float = 1.0  # the camera's optical centre above the floor: set your robot's
    pitch_deg: float = 0.0  # prior pitch (REP 103, positive = looking down)
    roll_deg: float = 0.0  # prior roll (REP 103, positive = right side down)
    max_normal_angle_deg: float = 35.0  # tolerance of the fitted normal around the prior's up
    floor_region: float = 0.5  # the lower fraction of the image rows searched for the floor
    stride: int = 4  # every Nth pixel in each direction is back-projected
    max_points: int = 3000  # candidates drawn (fixed seed) for RANSAC
    min_points: int = 100  # fewer candidate points: no floor in view
    min_inlier_fraction: float = 0.3  # of the candidate points
    inlier_threshold: float = 0.06  # |n.p + d| / d: a relative depth error
    ransac_iterations: int = 200
    scale_range: tuple[float, float] = (0.1, 500.0)  # metres per relative unit (about q98 depth)
    window: int = 9  # accepted scales in the smoother's median (in the current frame's unit)
    jump_ratio: float = 1.3  # a new scale beyond [ref / r, ref * r] is a jump
    jump_persist: int = 3  # consecutive frames before a jump is accepted
    # carry past scales into each frame's relative unit (`frame_units_ratio`) before smoothing;
    # False smooths raw scales, right only when the relative unit is steady (a sensor's metres)
    track_units: bool = True
    seed: int = 0
    # "fit": the plane's own normal (pitch and roll need not be known). "prior": the distance is
    # measured along the prior's up (pitch and roll known, e.g. a rigid mount on a level floor);
    # the fitted plane still finds the floor and must lie within the tolerance.
    normal: str = "fit"
    # the share (0-1) of the fitted floor's tilt from a measured up (`up_3`, e.g. an IMU's) that
    # is taken out of the depth (module docstring, step 6); 0 = scale only. Frames without a
    # measured up are only scaled. Needs normal "prior" (the floor is then measured along the up)
    tilt: float = 0.0
    # an up that is an estimate from the image (`depthart_core.vertical_lines`), not a
    # measurement: where the floor fitted along it lies further than this from it, the two
    # camera-only attitudes disagree and the frame is fitted along the prior instead
    # (`GroundPlaneScale.update(..., up_estimated=True)`). 0 = off, the default: since the
    # lines refuse ambiguous frames themselves the check costs more than it saves (BENCHMARKS 10)
    lines_agree_deg: float = 0.0

    def __post_init__(self) -> None:
        check_camera_height(self.camera_height_m)
        if not 0.0 <= self.lines_agree_deg < 90.0:  # NaN fails too
            raise ValueError(
                f"lines_agree_deg must be in [0, 90) (0 = off), got {self.lines_agree_deg!r}"
            )
        if self.normal not in NORMALS:
            raise ValueError(f"normal must be one of {NORMALS}, got {self.normal!r}")
        if not 0.0 <= self.tilt <= 1.0:  # NaN fails too
            raise ValueError(f"tilt must be a share in [0, 1], got {self.tilt!r}")
        if self.tilt > 0.0 and self.normal != "prior":
            raise ValueError(
                f"tilt {self.tilt:g} straightens the floor toward the measured up and measures it "
                f"along that up: it needs normal 'prior', got {self.normal!r}"
            )
        if not 0.0 < self.floor_region <= 1.0:
            raise ValueError(f"floor_region must be in (0, 1], got {self.floor_region}")
        for name in ("pitch_deg", "roll_deg"):  # NaN failed later as "no floor in view"
            value = getattr(self, name)
            if not (math.isfinite(value) and -90.0 <= value <= 90.0):
                raise ValueError(f"{name} must be finite and in [-90, 90] degrees, got {value}")
        if not 0.0 < self.max_normal_angle_deg < 90.0:
            raise ValueError(
                f"max_normal_angle_deg must be in (0, 90), got {self.max_normal_angle_deg}"
            )
        if not 0.0 < self.min_inlier_fraction <= 1.0:
            raise ValueError(
                f"min_inlier_fraction must be in (0, 1], got {self.min_inlier_fraction}"
            )
        if not 0.0 < self.inlier_threshold < 1.0:
            raise ValueError(f"inlier_threshold must be in (0, 1), got {self.inlier_threshold}")
        lo, hi = self.scale_range
        if not 0.0 < lo < hi:
            raise ValueError(f"scale_range must be 0 < lo < hi, got {self.scale_range}")
        for name in ("stride", "window", "jump_persist", "ransac_iterations"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_points < 3 or self.max_points < self.min_points:
            raise ValueError(
                f"need 3 <= min_points <= max_points, got {self.min_points}, {self.max_points}"
            )
        if self.jump_ratio <= 1.0:
            raise ValueError(f"jump_ratio must be > 1, got {self.jump_ratio}")


def expected_up(pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """(3,) unit vector: the world's up in the optical frame for a REP 103 pitch and roll."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    return np.array([-math.sin(r) * math.cos(p), -math.cos(r) * math.cos(p), -math.sin(p)])


def optical_from_body(pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """(3, 3): a vector in the REP 103 body frame (x forward, y left, z up) -> the optical frame
    of a camera mounted with that pitch (positive = looking down) and roll (positive = right side
    down). `optical_from_body(p, r) @ (0, 0, 1)` is `expected_up(p, r)`."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    level_33 = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    pitch_33 = np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]]
    )
    roll_33 = np.array(
        [[math.cos(r), math.sin(r), 0.0], [-math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]]
    )
    return roll_33 @ pitch_33 @ level_33


def imu_up(
    orientation_xyzw: Sequence[float], mount_pitch_deg: float = 0.0, mount_roll_deg: float = 0.0
) -> np.ndarray:
    """(3,) the world's up in the camera's optical frame from an IMU's attitude: a
    `sensor_msgs/Imu` orientation (x, y, z, w; the IMU frame in a z-up world frame, REP 145),
    with the camera mounted at `mount_pitch_deg` / `mount_roll_deg` relative to the IMU frame
    (taken as a REP 103 body frame). The yaw plays no part. ValueError naming a quaternion that
    is not finite or far from unit length."""
    q = np.asarray(orientation_xyzw, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(q)) if q.size == 4 and np.isfinite(q).all() else float("nan")
    if not 0.5 <= norm <= 1.5:
        raise ValueError(
            f"IMU orientation must be a unit quaternion (x, y, z, w), got {q.tolist()}"
        )
    x, y, z, w = q / norm
    # the third row of the body -> world rotation: the world's z axis in body coordinates
    up_body_3 = np.array(
        [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)]
    )
    return optical_from_body(mount_pitch_deg, mount_roll_deg) @ up_body_3


def frame_up(
    orientation_xyzw: Sequence[float] | None,
    mount_pitch_deg: float,
    mount_roll_deg: float,
    max_dt_s: float,
) -> tuple[np.ndarray | None, str]:
    """A frame's up from the IMU attitude nearest its stamp (None: none within `max_dt_s`), as
    the node and the replay use it: (up, "imu"), or (None, "prior (why)") to fall back to the
    mount prior."""
    if orientation_xyzw is None:
        return None, f"prior (no imu within {max_dt_s:g} s)"
    try:
        return imu_up(orientation_xyzw, mount_pitch_deg, mount_roll_deg), "imu"
    except ValueError as exc:
        return None, f"prior ({exc})"


def attitude_for_up(
    up_3: np.ndarray, mount_pitch_deg: float = 0.0, mount_roll_deg: float = 0.0
) -> np.ndarray:
    """(x, y, z, w): an IMU attitude whose `imu_up` through this mount is `up_3` (the inverse of
    `imu_up`, with yaw 0): for writing the IMU of a rendered camera path."""
    up_body_3 = optical_from_body(mount_pitch_deg, mount_roll_deg).T @ check_up(up_3)
    # the shortest rotation taking the body's up to the world's z: body -> world
    axis_3 = np.cross(up_body_3, np.array([0.0, 0.0, 1.0]))
    s, c = float(np.linalg.norm(axis_3)), float(up_body_3[2])
    if s < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0]) if c > 0 else np.array([1.0, 0.0, 0.0, 0.0])
    half = math.atan2(s, c) / 2.0
    return np.concatenate([axis_3 / s * math.sin(half), [math.cos(half)]])


def check_up(up_3: Sequence[float] | np.ndarray) -> np.ndarray:
    """(3,) float64 unit vector of a measured up; ValueError naming the value unless it is three
    finite numbers of length 0.9-1.1 (a gravity direction, not an acceleration in m/s^2)."""
    v = np.asarray(up_3, dtype=np.float64).reshape(-1)
    if v.size != 3 or not np.isfinite(v).all():
        raise ValueError(f"up must be 3 finite numbers, got {np.asarray(up_3).tolist()}")
    norm = float(np.linalg.norm(v))
    if not 0.9 <= norm <= 1.1:
        raise ValueError(f"up must be a unit vector, got length {norm:.3g}: {v.tolist()}")
    return v / norm


def projection_p(projection: Sequence[float] | np.ndarray) -> list[float]:
    """12 values of a 3x4 P from a 3x3 K or a 3x4 P (flat or shaped); ValueError otherwise."""
    m = np.asarray(projection, dtype=np.float64).reshape(-1)
    if m.size == 9:
        return np.concatenate([m.reshape(3, 3), np.zeros((3, 1))], axis=1).reshape(-1).tolist()
    if m.size == 12:
        return m.tolist()
    raise ValueError(f"projection must be a 3x3 K or a 3x4 P (9 or 12 values), got {m.size}")


@dataclass(frozen=True)
class GroundFit:
    """One frame's floor: scale (None with `code` and `reason` when a guard refused it) and the
    quality signals diagnostics show. normal_3 points up; the plane is n.p + distance = 0 in the
    relative depth's units."""

    scale: float | None
    code: str
    reason: str
    n_candidates: int = 0
    inlier_fraction: float = 0.0
    normal_angle_deg: float = float("nan")  # fitted normal vs the prior's up
    residual: float = float("nan")  # RMS |n.p + d| / d over the inliers (relative depth error)
    distance: float = float("nan")
    normal_3: tuple[float, float, float] = (float("nan"),) * 3
    # the inverse-depth correction per ray unit (zero: scale only) and the range its factor
    # 1 / (1 + z r.t) takes on the floor's inliers (`apply_floor_scale` clips to it)
    tilt_3: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tilt_share: float = 0.0  # the share of the tilt corrected in this frame (<= cfg.tilt)
    tilt_factor_range: tuple[float, float] = (1.0, 1.0)
    # set where an estimated up was dropped for the prior's (`GroundPlaneScale.update`): why
    up_dropped: str = ""


def floor_candidates(
    depth_HW: np.ndarray,
    projection: Sequence[float] | np.ndarray,
    cfg: GroundPlaneConfig,
    up_3: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 3) float64 points of the depth's valid pixels in the floor region that lie below the
    camera along `up_3` (default: the prior's up), at most `cfg.max_points` of them (a seeded
    draw)."""
    if depth_HW.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth_HW.shape}")
    h, w = depth_HW.shape
    rays_hw2 = pixel_rays(h, w, (), projection_p(projection), stride=cfg.stride)
    cloud_hw = depth_to_points(depth_HW, rays_hw2, cfg.stride)
    first_row = math.ceil(h * (1.0 - cfg.floor_region) / cfg.stride)  # in strided rows
    low_hw = cloud_hw[first_row:]
    pts_N3 = np.stack([low_hw["x"], low_hw["y"], low_hw["z"]], axis=-1).reshape(-1, 3)
    pts_N3 = pts_N3[np.isfinite(pts_N3[:, 2])].astype(np.float64)
    up_3 = expected_up(cfg.pitch_deg, cfg.roll_deg) if up_3 is None else up_3
    pts_N3 = pts_N3[pts_N3 @ up_3 < 0.0]
    if len(pts_N3) > cfg.max_points:
        pick = np.random.default_rng(cfg.seed).choice(len(pts_N3), cfg.max_points, replace=False)
        pts_N3 = pts_N3[np.sort(pick)]
    return pts_N3


_SCORE_POINTS = 500  # hypotheses are scored on this many points; the winners on all of them


Plane = tuple[np.ndarray, float]  # (unit normal toward the camera (3,), distance)


def _inliers(pts_N3: np.ndarray, plane: Plane, threshold: float) -> np.ndarray:
    normal_3, dist = plane
    return np.abs(pts_N3 @ normal_3 + dist) <= threshold * dist


def _cost(pts_N3: np.ndarray, plane: Plane, threshold: float) -> float:
    """The MSAC cost of one plane (see `_ransac`)."""
    normal_3, dist = plane
    signed_N = (pts_N3 @ normal_3 + dist) / (threshold * dist)
    return float(np.mean(np.minimum(signed_N**2, 1.0) + (signed_N < -1.0)))


def _ransac(
    pts_N3: np.ndarray, up_3: np.ndarray, cfg: GroundPlaneConfig
) -> tuple[Plane | None, Plane | None]:
    """The best plane among those within the angle tolerance of `up_3`, and the best plane of
    any orientation (None where no hypothesis qualifies).

    A plane's cost is MSAC's (Torr and Zisserman 2000): each point's squared residual over the
    threshold, capped at 1, so a plane that fits its points tightly usually beats a slab that
    cuts the corner between floor and wall and holds more points loosely. A point beyond the
    plane (past the threshold on the far side from the camera) costs 1 more: nothing is seen
    through a floor or a wall. Not always: with a wall 1.5-2 m ahead filling most of the floor
    region, a plane tilted 10-30 deg toward the wall through the corner costs less than the true
    floor even on exact depth (README, `normal: prior` is exact there)."""
    rng = np.random.default_rng(cfg.seed)
    n = len(pts_N3)
    idx_I3 = rng.integers(0, n, size=(cfg.ransac_iterations, 3))  # a repeated index: no normal
    a_I3, b_I3, c_I3 = (pts_N3[idx_I3[:, k]] for k in range(3))
    normal_I3 = np.cross(b_I3 - a_I3, c_I3 - a_I3)
    norm_I = np.linalg.norm(normal_I3, axis=1)
    ok_I = norm_I > 1e-12
    normal_I3 = normal_I3 / np.where(ok_I, norm_I, 1.0)[:, None]
    dist_I = -np.einsum("ij,ij->i", normal_I3, a_I3)
    flip_I = np.where(dist_I < 0.0, -1.0, 1.0)  # the camera on the positive side of each plane
    normal_I3, dist_I = normal_I3 * flip_I[:, None], dist_I * flip_I
    ok_I &= dist_I > 0
    sub_S3 = pts_N3[rng.permutation(n)[:_SCORE_POINTS]]
    signed_IS = normal_I3 @ sub_S3.T + dist_I[:, None]
    safe_I = np.where(ok_I, dist_I, 1.0)  # degenerate hypotheses are masked below anyway
    rel_IS = signed_IS / (cfg.inlier_threshold * safe_I[:, None])
    cost_I = np.minimum(rel_IS**2, 1.0).mean(axis=1) + (rel_IS < -1.0).mean(axis=1)
    cost_I = np.where(ok_I, cost_I, np.inf)
    near_I = ok_I & (normal_I3 @ up_3 >= math.cos(math.radians(cfg.max_normal_angle_deg)))
    i_near, i_any = int(np.argmin(np.where(near_I, cost_I, np.inf))), int(np.argmin(cost_I))
    near = (normal_I3[i_near], float(dist_I[i_near])) if near_I.any() else None
    return near, ((normal_I3[i_any], float(dist_I[i_any])) if ok_I.any() else None)


def _refit(pts_N3: np.ndarray, plane: Plane, threshold: float) -> tuple[Plane, np.ndarray]:
    """Least-squares refinement of a RANSAC plane, and the points within `threshold` of the
    result. The least squares use only the points within 3 robust sigmas of the current plane
    (at most `threshold`): on clean data the foot of a wall lies inside the threshold and would
    tilt the plane toward the corner."""
    best, best_cost = plane, _cost(pts_N3, plane, threshold)
    for _ in range(3):
        normal_3, dist = plane
        rel_N = np.abs(pts_N3 @ normal_3 + dist) / dist
        inl_N = rel_N <= threshold
        sigma = 1.4826 * float(np.median(rel_N[inl_N])) if inl_N.any() else 0.0
        tight_N = rel_N <= min(threshold, max(3.0 * sigma, 1e-4))
        if tight_N.sum() < 3:
            break
        sel_M3 = pts_N3[tight_N]
        centroid_3 = sel_M3.mean(axis=0)
        _, _, vt_33 = np.linalg.svd(sel_M3 - centroid_3, full_matrices=False)
        normal_3 = vt_33[-1] * (1.0 if vt_33[-1] @ centroid_3 <= 0 else -1.0)  # toward the camera
        if -float(normal_3 @ centroid_3) <= 0:  # a plane through the camera: keep the last one
            break
        plane = (normal_3, -float(normal_3 @ centroid_3))
        cost = _cost(pts_N3, plane, threshold)
        if cost < best_cost:  # never trade the RANSAC plane for a worse one
            best, best_cost = plane, cost
    return best, _inliers(pts_N3, best, threshold)


def _prior_distance(
    pts_N3: np.ndarray, inliers_N: np.ndarray, up_3: np.ndarray, threshold: float
) -> float:
    """The floor's distance below the camera along the prior's up: the median height of the
    fitted plane's inliers, re-selected once within `threshold` of that level."""
    below_N = -(pts_N3 @ up_3)
    dist = float(np.median(below_N[inliers_N]))
    level_N = np.abs(below_N - dist) <= threshold * dist
    return float(np.median(below_N[level_N])) if level_N.any() else dist


def _deg(angle_deg: float) -> str:
    """An angle for a reason: whole degrees, one decimal below 10 (a tolerance of 0.5 deg must
    not read "1 deg > 0.5")."""
    return f"{angle_deg:.0f}" if abs(angle_deg) >= 10.0 else f"{angle_deg:.1f}"


def _up_source(cfg: GroundPlaneConfig, measured: bool) -> str:
    """Where a frame's up came from, for a refusal to name."""
    if measured:
        return "this frame's measured up (IMU or vertical lines)"
    roll = f", roll {cfg.roll_deg:g} deg" if cfg.roll_deg else ""
    return f"the pitch prior of {cfg.pitch_deg:g} deg{roll}"


def _angle_deg(a_3: np.ndarray, b_3: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(a_3 @ b_3, -1.0, 1.0))))


def fit_ground_plane(
    depth_HW: np.ndarray,
    projection: Sequence[float] | np.ndarray,
    cfg: GroundPlaneConfig | None = None,
    camera_height_m: float | None = None,
    up_3: np.ndarray | None = None,
) -> GroundFit:
    """The floor in a relative (or any-unit) depth map and the scale that makes it metres.
    `camera_height_m` overrides `cfg.camera_height_m` (checked the same way); `up_3` overrides
    the prior's up with this frame's measured one (`check_up`, e.g. `imu_up` from an IMU)."""
    cfg = cfg or GroundPlaneConfig()
    height = check_camera_height(
        cfg.camera_height_m if camera_height_m is None else camera_height_m
    )
    measured = up_3 is not None
    up_3 = expected_up(cfg.pitch_deg, cfg.roll_deg) if up_3 is None else check_up(up_3)
    max_angle = cfg.max_normal_angle_deg
    pts_N3 = floor_candidates(depth_HW, projection, cfg, up_3)
    n = len(pts_N3)
    if n < cfg.min_points:
        where = f"in the lower {cfg.floor_region:.0%} of the image"
        why = f"no floor in view: {n} valid points below the camera {where} < {cfg.min_points}"
        return GroundFit(None, "no_floor", why, n)
    near, dominant = _ransac(pts_N3, up_3, cfg)
    need = cfg.min_inlier_fraction * n
    n_near = int(_inliers(pts_N3, near, cfg.inlier_threshold).sum()) if near else 0
    if (
        dominant
        and n_near < need
        and _inliers(pts_N3, dominant, cfg.inlier_threshold).sum() >= need
    ):
        (normal_3, dist), inl_N = _refit(pts_N3, dominant, cfg.inlier_threshold)
        angle = _angle_deg(normal_3, up_3)
        if angle > max_angle:  # a plane dominates, and it is not the floor
            why = f"no floor in view: the dominant plane is {_deg(angle)} deg from up > "
            why += f"{max_angle:g} (a wall or a ramp, or the camera pitched more than that from "
            why += f"{_up_source(cfg, measured)})"
            return _result("normal_far_from_up", why, pts_N3, normal_3, dist, inl_N, angle)
    if near is None or n_near < 3:
        why = f"too few floor inliers: no plane within {max_angle:g} deg of up fits 3 of {n} points"
        return GroundFit(None, "few_inliers", why, n)
    (normal_3, dist), inl_N = _refit(pts_N3, near, cfg.inlier_threshold)
    angle, frac = _angle_deg(normal_3, up_3), float(inl_N.mean())
    plane = (pts_N3, normal_3, dist, inl_N, angle)
    if frac < cfg.min_inlier_fraction:
        why = (f"too few floor inliers: {int(inl_N.sum())} of {n} points "
               f"({frac:.1%}) < {cfg.min_inlier_fraction:.0%}")  # fmt: skip
        return _result("few_inliers", why, *plane)
    if angle > max_angle:  # the refit can leave the tolerance that RANSAC kept
        why = f"floor {_deg(angle)} deg from up > {max_angle:g} (the up of "
        why += f"{_up_source(cfg, measured)})"
        return _result("normal_far_from_up", why, *plane)
    tilt = None
    if cfg.tilt > 0.0 and measured:
        tilt = floor_tilt(pts_N3[inl_N], normal_3, dist, up_3, cfg.tilt)
        with np.errstate(divide="ignore", invalid="ignore"):
            den_N = 1.0 + pts_N3 @ tilt.t_3
            pts_N3 = np.where((den_N > 0.0)[:, None], pts_N3 / den_N[:, None], np.nan)
    if cfg.normal == "prior":
        dist = _prior_distance(pts_N3, inl_N, up_3, cfg.inlier_threshold)
    scale = height / dist if dist > 0 else math.inf
    lo, hi = cfg.scale_range
    if not lo <= scale <= hi:
        why = (
            f"implausible scale {scale:.4g} (camera height {height:g} m / plane distance "
            f"{dist:.4g}) outside [{lo:g}, {hi:g}]"
        )
        return _result("scale_out_of_range", why, *plane)
    fit = _result("ok", "ok", *plane, scale=scale)
    if tilt is None:
        return fit
    t_3 = (float(tilt.t_3[0]), float(tilt.t_3[1]), float(tilt.t_3[2]))
    return replace(fit, tilt_3=t_3, tilt_share=tilt.share, tilt_factor_range=tilt.factor_range)


@dataclass(frozen=True)
class FloorTilt:
    """The inverse-depth correction that turns a fitted floor toward a measured up."""

    t_3: np.ndarray  # 1/z' = 1/z + r.t for the ray r = (x/z, y/z, 1), in the depth's units
    share: float  # of the tilt corrected (the asked share, or less where it moved the floor 2x)
    factor_range: tuple[float, float]  # of z'/z = 1 / (1 + z r.t) over the floor's points


def floor_tilt(
    floor_N3: np.ndarray, normal_3: np.ndarray, dist: float, up_3: np.ndarray, share: float
) -> FloorTilt:
    """The correction that takes `share` of the way from the plane (`normal_3`, `dist`) to a
    plane perpendicular to `up_3` at the same distance, keeping each pixel on its ray (a plane's
    inverse depth is linear in the ray, so the plane stays a plane). The share is lowered until
    no floor point's depth changes by more than a factor of 2 (an extreme tilt is the model's
    depth failing, not a pitch to undo)."""
    t0_3 = (np.asarray(normal_3, dtype=np.float64) - up_3) / dist
    c_N = floor_N3 @ t0_3  # p.t0 = z r.t0: a floor point's factor is 1 / (1 + share * c)
    a = float(share)
    if len(c_N) and c_N.min() < 0.0:
        a = min(a, 0.5 / -float(c_N.min()))  # factor <= 2
    if len(c_N) and c_N.max() > 0.0:
        a = min(a, 1.0 / float(c_N.max()))  # factor >= 0.5
    f_N = 1.0 / (1.0 + a * c_N) if len(c_N) else np.ones(1)
    return FloorTilt(a * t0_3, a, (float(f_N.min()), float(f_N.max())))


def tilt_factor(
    depth_HW: np.ndarray, projection: Sequence[float] | np.ndarray, fit: GroundFit, stride: int = 1
) -> np.ndarray:
    """Each (`stride`-th) pixel's z'/z = 1 / (1 + z r.t) of the frame's floor tilt, clipped to
    the range the floor's inliers take (past the corrected horizon: its top); NaN where the
    depth is not finite."""
    depth = np.asarray(depth_HW, dtype=np.float32)[::stride, ::stride]
    h, w = np.asarray(depth_HW).shape
    rays_hw2 = pixel_rays(h, w, (), projection_p(projection), stride=stride)
    t_3 = np.asarray(fit.tilt_3, dtype=np.float32)
    rt_hw = rays_hw2[..., 0] * t_3[0] + rays_hw2[..., 1] * t_3[1] + t_3[2]
    lo, hi = fit.tilt_factor_range
    with np.errstate(divide="ignore", invalid="ignore"):
        den_hw = 1.0 + depth * rt_hw
        f_hw = np.where(den_hw > 0.0, 1.0 / den_hw, np.float32(hi))
    f_hw = np.clip(f_hw, np.float32(lo), np.float32(hi))
    return np.where(np.isfinite(depth), f_hw, np.nan).astype(np.float32)


def tilt_unit(
    depth_HW: np.ndarray, projection: Sequence[float] | np.ndarray, fit: GroundFit, stride: int
) -> float:
    """The median factor the floor tilt puts on the frame's valid pixels: corrected depth is
    about this times the raw depth, so scale * unit is a scale for the raw depth's unit."""
    f_hw = tilt_factor(depth_HW, projection, fit, stride)
    ok = np.isfinite(f_hw) & (np.asarray(depth_HW)[::stride, ::stride] > 0)
    return float(np.median(f_hw[ok])) if ok.any() else 1.0


def apply_floor_scale(
    depth_HW: np.ndarray, projection: Sequence[float] | np.ndarray, scale: float, fit: GroundFit
) -> np.ndarray:
    """Metres from relative depth: `scale` times the depth straightened by the frame's floor
    tilt (`fit.tilt_3`; without one, exactly `depth * scale`). Each pixel's factor
    1 / (1 + z r.t) is clipped to the range it takes on the floor's inliers, so pixels far
    beyond the floor are not extrapolated past what the floor supports."""
    depth = np.asarray(depth_HW, dtype=np.float32)
    if not any(fit.tilt_3):
        return depth * np.float32(scale)
    f_hw = tilt_factor(depth, projection, fit)
    return (depth * f_hw * np.float32(scale)).astype(np.float32)


def _result(
    code: str,
    reason: str,
    pts_N3: np.ndarray,
    normal_3: np.ndarray,
    dist: float,
    inl_N: np.ndarray,
    angle: float,
    scale: float | None = None,
) -> GroundFit:
    """A GroundFit with the quality signals of a fitted plane (refused unless `scale` is set)."""
    resid_M = (pts_N3[inl_N] @ normal_3 + dist) / abs(dist) if dist else np.array([np.inf])
    rms = float(np.sqrt(np.mean(resid_M**2)))
    normal = (float(normal_3[0]), float(normal_3[1]), float(normal_3[2]))
    return GroundFit(
        scale, code, reason, len(pts_N3), float(inl_N.mean()), angle, rms, dist, normal
    )


def metric_from_floor(
    depth_HW: np.ndarray,
    hfov_deg: float,
    camera_height_m: float,
    cfg: GroundPlaneConfig | None = None,
) -> tuple[np.ndarray | None, GroundFit]:
    """One image without a calibration (`depthart predict --camera-height`): its depth in metres
    through an ideal pinhole of `hfov_deg`, or None and the fit that says why not."""
    h, w = depth_HW.shape
    fit = fit_ground_plane(depth_HW, pinhole_p(h, w, hfov_deg), cfg, camera_height_m)
    if fit.scale is None:
        return None, fit
    return (np.asarray(depth_HW, dtype=np.float32) * np.float32(fit.scale)), fit


@dataclass(frozen=True)
class SmoothedScale:
    """The scale to apply this frame (None: publish relative depth) and why it is what it is."""

    scale: float | None
    status: str  # "first", "updated", "held", "jump_accepted", "no_fit"
    detail: str


@dataclass
class ScaleSmoother:
    """Median of the last `window` accepted scales. A frame's scale beyond `jump_ratio` of that
    median is held off (the median stays) until `persist` consecutive frames agree with one
    another on the new level; then the history restarts there. A frame without a fit publishes
    relative depth (scale None) and neither breaks nor extends a pending jump; after `persist`
    such frames in a row the memory is stale (the floor was out of view while the unit it is
    carried in drifted), so the next fit starts over instead of being held against it."""

    window: int = 9
    jump_ratio: float = 1.3
    persist: int = 3
    _history: deque = field(init=False, repr=False)
    _pending: list = field(init=False, repr=False, default_factory=list)
    _misses: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        if self.window < 1 or self.persist < 1 or self.jump_ratio <= 1.0:
            raise ValueError(
                f"need window >= 1, persist >= 1, jump_ratio > 1; got {self.window}, "
                f"{self.persist}, {self.jump_ratio}"
            )
        self._history = deque(maxlen=self.window)

    @classmethod
    def from_config(cls, cfg: GroundPlaneConfig) -> ScaleSmoother:
        return cls(cfg.window, cfg.jump_ratio, cfg.jump_persist)

    def reset(self) -> None:
        """Forget every scale (for example after the camera height changed)."""
        self._history.clear()
        self._pending.clear()
        self._misses = 0

    def _near(self, a: float, b: float) -> bool:
        return 1.0 / self.jump_ratio <= a / b <= self.jump_ratio

    def rescale(self, units: float) -> None:
        """Carry every remembered scale into a new relative unit: a scale s for the old unit is
        s * units for the new one (`units` = old relative depth / new, `frame_units_ratio`)."""
        if not (math.isfinite(units) and units > 0.0):
            raise ValueError(f"units must be finite and > 0, got {units}")
        self._history = deque((s * units for s in self._history), maxlen=self.window)
        self._pending = [s * units for s in self._pending]

    def update(self, raw: float | None, why: str = "no fit") -> SmoothedScale:
        """The scale to apply after this frame's raw scale (None when the fit was refused)."""
        if raw is None:
            self._misses += 1
            return SmoothedScale(None, "no_fit", why)
        if self._misses >= self.persist:
            self.reset()  # stale: the floor was out of view for `persist` frames or more
        self._misses = 0
        if not self._history:
            self._history.append(raw)
            return SmoothedScale(raw, "first", f"first scale {raw:.4g}")
        ref = float(np.median(self._history))
        if self._near(raw, ref):
            self._pending.clear()
            self._history.append(raw)
            return SmoothedScale(float(np.median(self._history)), "updated", f"raw {raw:.4g}")
        if self._pending and not self._near(raw, float(np.median(self._pending))):
            self._pending.clear()  # a different jump: count again
        self._pending.append(raw)
        if len(self._pending) < self.persist:
            held = f"jump {ref:.4g} -> {raw:.4g} held ({len(self._pending)}/{self.persist} frames)"
            return SmoothedScale(ref, "held", held)
        new = float(np.median(self._pending))
        self._history.clear()
        self._history.extend(self._pending)
        self._pending.clear()
        why = f"jump {ref:.4g} -> {new:.4g} persisted {self.persist} frames"
        return SmoothedScale(new, "jump_accepted", why)


_UNITS_MIN_PIXELS = 100  # pixels valid in both frames below which the unit change is unknown


def frame_units_ratio(prev_hw: np.ndarray, cur_hw: np.ndarray) -> float | None:
    """How the relative unit changed between two frames of one camera: the median over pixels
    valid in both of prev / cur (a robust ratio; pixels that moved or changed are outliers to a
    median as long as most of the view is shared). A previous frame of another size of the same
    aspect (a camera switching modes, relative depth being resolution-free) is compared resized
    to this one's; None for another aspect or fewer than `_UNITS_MIN_PIXELS` pixels valid in
    both."""
    if prev_hw.shape != cur_hw.shape:
        (ph, pw), (ch, cw) = prev_hw.shape, cur_hw.shape
        if min(ph, pw, ch, cw) < 2 or abs((pw / ph) / (cw / ch) - 1.0) > 0.01:
            return None
        prev_hw = cv2.resize(prev_hw, (cw, ch), interpolation=cv2.INTER_NEAREST)
    both = np.isfinite(prev_hw) & np.isfinite(cur_hw) & (prev_hw > 0) & (cur_hw > 0)
    if int(both.sum()) < _UNITS_MIN_PIXELS:
        return None
    return float(np.median(prev_hw[both] / cur_hw[both]))


class GroundPlaneScale:
    """Per-stream state: fit the floor in each frame, smooth the scale, report why. One per
    camera; `update` returns the frame's fit and the scale to apply (None: stay relative).
    With `cfg.track_units` the smoother's memory follows the relative unit from frame to frame
    (`frame_units_ratio` on every `cfg.stride`-th pixel); where the unit change cannot be
    measured (another aspect, almost no valid pixels) the memory is dropped."""

    def __init__(self, cfg: GroundPlaneConfig | None = None) -> None:
        self.cfg = cfg or GroundPlaneConfig()
        self.smoother = ScaleSmoother.from_config(self.cfg)
        self._prev_hw: np.ndarray | None = None

    def update(
        self,
        depth_HW: np.ndarray,
        projection: Sequence[float] | np.ndarray,
        camera_height_m: float | None = None,
        up_3: np.ndarray | None = None,
        up_estimated: bool = False,
    ) -> tuple[GroundFit, SmoothedScale]:
        """The frame's fit along `up_3` (None: the prior's) and the smoothed scale. With
        `up_estimated` (the vertical lines' up, not an IMU's measurement) an accepted floor more
        than `cfg.lines_agree_deg` from that up is a disagreement: the frame is fitted along
        the prior instead and `fit.up_dropped` says why (a refused fit stays refused; 0 = off)."""
        fit = fit_ground_plane(depth_HW, projection, self.cfg, camera_height_m, up_3)
        agree = self.cfg.lines_agree_deg
        disagree = agree > 0.0 and fit.scale is not None and fit.normal_angle_deg > agree
        if up_3 is not None and up_estimated and disagree:
            why = (
                f"the floor is {fit.normal_angle_deg:.1f} deg from the lines' up > "
                f"{self.cfg.lines_agree_deg:g}"
            )
            fit = replace(
                fit_ground_plane(depth_HW, projection, self.cfg, camera_height_m), up_dropped=why
            )
        # a straightened frame's scale is for its corrected depth, whose unit is not the raw
        # depth's that the smoother follows: it smooths the scale times the correction's median
        # factor (a raw-unit scale), and hands back the scale for this frame's corrected depth
        unit = 1.0
        if fit.scale is not None and any(fit.tilt_3):
            unit = tilt_unit(depth_HW, projection, fit, self.cfg.stride)
        if self.cfg.track_units:
            step = self.cfg.stride
            cur_hw = np.array(depth_HW[::step, ::step], dtype=np.float32)
            if self._prev_hw is not None:
                units = frame_units_ratio(self._prev_hw, cur_hw)
                if units is None:
                    self.smoother.reset()
                else:
                    self.smoother.rescale(units)
            self._prev_hw = cur_hw
        raw = None if fit.scale is None else fit.scale * unit
        applied = self.smoother.update(raw, fit.reason)
        if applied.scale is not None and unit != 1.0:
            applied = replace(applied, scale=applied.scale / unit)
        return fit, applied

    def forget(self) -> None:
        """Drop every remembered scale and the last frame: the next frame starts over (another
        source took the frames in between, so the carried unit would be a stranger's)."""
        self.smoother.reset()
        self._prev_hw = None


def diagnostics(fit: GroundFit, applied: SmoothedScale) -> dict[str, str]:
    """Key/value strings for a diagnostic status: the scale applied, the frame's plane quality,
    and the reason whenever the output falls back to relative depth."""
    out = {
        "metric source": "ground_plane",
        "scale": "none (relative output)" if applied.scale is None else f"{applied.scale:.4g}",
        "scale status": f"{applied.status}: {applied.detail}",
        "frame fit": fit.code,
        "plane inlier fraction": f"{fit.inlier_fraction:.3f}",
        "plane normal angle from up [deg]": f"{fit.normal_angle_deg:.1f}",
        "plane residual (relative)": f"{fit.residual:.4f}",
        "floor tilt share corrected": f"{fit.tilt_share:.2f}",
        "floor candidate points": str(fit.n_candidates),
    }
    if applied.scale is None:
        out["fallback reason"] = fit.reason
    return out
