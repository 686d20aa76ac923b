"""The world's up from the image's lines (vertical, else the horizon): a camera-only attitude.

The ground-plane scale (`depthart_core.ground_plane`) needs the floor's normal. Fitted from the
model's own depth it is off by a median 2-6 degrees (BENCHMARKS 10), and the scale's error
follows the pitch's; an IMU's attitude fixes that, but not every robot's camera has one. Indoor
scenes have another gravity sensor: the world's vertical edges (door frames, shelf uprights, wall
corners, box sides). Seen through a pinhole they all meet at one vanishing point, and that
point, back-projected through the calibration, is the up direction in the camera frame. This is
geometry on the image alone, not the depth model, so its error does not share the model's.

Steps (numpy and OpenCV's line segment detector):
1. line segments (LSD) in the grey image; those shorter than `min_length` of the image's longer
   side are dropped (a short segment's direction is a pixel's worth of angle);
2. each segment's interpretation plane through the camera centre: normal n = r1 x r2 for the rays
   of its two ends (through K, or P's left 3x3 for a rectified image). A world line of direction
   u lies in that plane, so n . u = 0 for a vertical segment and the up;
3. candidates: segments whose plane passes within `max_angle_deg` of the prior up (the mount's
   pitch and roll; the robot's bumps are on top of it);
4. RANSAC (fixed seed): the up of two segments' planes (n_a x n_b), kept if within `max_angle_deg`
   of the prior, scored by the summed length of the segments within `inlier_deg` of it;
5. refit: the unit u minimising sum(length * (n . u)^2) over the inliers (the smallest
   eigenvector), three rounds of inliers and refit;
6. guards, each a code and a reason instead of an up: too few segments, too few inliers, an up
   further than `up_tolerance_deg` from the prior (`far_from_prior`), and a rival: among the
   segments the up leaves out, another family agreeing on an up `rival_deg` away with
   `rival_ratio` of the up's support (a ratio test, as in feature matching: two strong answers
   mean neither is trusted). Walls whose texture has slanted near-vertical joints fooled the
   lines without it (BENCHMARKS 10).

Frames: the REP 103 optical frame (x right, y down, z forward), the same up as `expected_up`.
The horizon, wherever the vertical lines give no up (too few segments, an up outside the
prior's tolerance, or two rival families): a horizontal world line's vanishing point lies on
the horizon, the image of the plane through the camera centre normal to the up. Floor planks and
tiles, shelf edges, box tops and the floor's junction with the walls come in parallel families;
two families' vanishing points v1, v2 (directions in the camera frame, each the smallest
eigenvector of its segments' planes, found by RANSAC among the segments that are not vertical
candidates, kept within `max_angle_deg` of the prior's horizon) give the up as v1 x v2, kept
only within `up_tolerance_deg` of the prior. Families less than `horizon_sep_deg` apart
give no up (the cross product of near-parallel directions is noise). On the rendered bags the
horizon's up was a median 0.7 deg from the IMU's on the frames the vertical lines refused for
too few lines (the mount prior 2.5 deg), and 1.2 deg on the `ambiguous` ones, whose slanted
textures slant some horizontal joints too (BENCHMARKS 10).

The scene must have vertical structure or parallel horizontal edges: outdoors among trees, or
in a room seen from the floor at a blank wall, there may be none, and the caller falls back to
the prior (the node says so).
At low resolution the edges are too short and too aliased for a fraction of a degree: on the
renderer's 120x160 frames the error was several degrees, at 480x640 a few tenths (BENCHMARKS 10).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

LINES_CODES = ("ok", "horizon", "few_lines", "few_inliers", "far_from_prior", "ambiguous")


@dataclass(frozen=True)
class VerticalLinesConfig:
    """How vertical segments are found and trusted; angles in degrees."""

    max_angle_deg: float = 10.0  # the search cone around the prior's vertical and horizon
    inlier_deg: float = 0.5  # a segment's plane within this of the up counts for it
    min_length: float = 0.03  # segments shorter than this share of the image's longer side drop
    min_lines: int = 6  # inlier segments needed for an up
    hypotheses: int = 256  # RANSAC pairs (fixed seed)
    refits: int = 3
    seed: int = 0
    # a rival family: segments the up leaves out that agree on another up at least `rival_deg`
    # away, with `rival_ratio` of the up's own support (summed length) or more, make the frame
    # ambiguous (a slanted texture's joints beside the true verticals; BENCHMARKS 10); 1 = off
    rival_ratio: float = 0.5
    rival_deg: float = 2.0
    # the horizon where the vertical lines give no up (module docstring): up to `horizon_vps`
    # vanishing points of horizontal families (0 = off), each of `horizon_min_lines` segments
    # or more, the two used at least `horizon_sep_deg` apart
    horizon_vps: int = 4
    horizon_min_lines: int = 5
    horizon_sep_deg: float = 20.0
    # an up (from either source) is kept only within this of the prior: the mount's pitch and
    # roll plus the robot's bumps. On the rendered bags the IMU's attitude stayed within 4.9 deg
    # of the prior and the ups found 5+ deg from it were a median 3-9 deg wrong (BENCHMARKS 10);
    # widen it (up to `max_angle_deg`) for a robot that tilts more
    up_tolerance_deg: float = 5.0
    # the segments that fix a direction (the up, or a horizontal vanishing point) must fan out:
    # pieces of one image line (a floor seam split where other lines cross it) share a single
    # plane, which leaves the direction free to turn within it. Their normals' length-weighted
    # scatter has a middle / largest eigenvalue ratio below this (about sin^2 of 2 deg; real
    # scenes 0.03-0.13); 0 = off
    min_spread: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 < self.max_angle_deg < 90.0:
            raise ValueError(f"max_angle_deg must be in (0, 90), got {self.max_angle_deg!r}")
        if not 0.0 < self.inlier_deg < self.max_angle_deg:
            raise ValueError(
                f"inlier_deg must be in (0, max_angle_deg={self.max_angle_deg:g}), "
                f"got {self.inlier_deg!r}"
            )
        if not 0.0 < self.min_length < 1.0:
            raise ValueError(f"min_length must be a share in (0, 1), got {self.min_length!r}")
        if int(self.min_lines) < 2:
            raise ValueError(f"min_lines must be >= 2, got {self.min_lines!r}")
        for name in ("hypotheses", "refits"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.min_spread < 1.0:  # NaN fails too
            raise ValueError(f"min_spread must be in [0, 1) (0 = off), got {self.min_spread!r}")
        if not 0.0 < self.rival_ratio <= 1.0:
            raise ValueError(f"rival_ratio must be in (0, 1], got {self.rival_ratio!r}")
        if not self.inlier_deg <= self.rival_deg <= 2.0 * self.max_angle_deg:
            raise ValueError(
                f"rival_deg must be in [inlier_deg={self.inlier_deg:g}, "
                f"2 * max_angle_deg={2.0 * self.max_angle_deg:g}], got {self.rival_deg!r}"
            )
        if int(self.horizon_vps) < 0 or int(self.horizon_vps) == 1:
            raise ValueError(f"horizon_vps must be 0 (off) or >= 2, got {self.horizon_vps!r}")
        if int(self.horizon_min_lines) < 2:
            raise ValueError(f"horizon_min_lines must be >= 2, got {self.horizon_min_lines!r}")
        if not 0.0 < self.up_tolerance_deg <= self.max_angle_deg:
            raise ValueError(
                f"up_tolerance_deg must be in (0, max_angle_deg={self.max_angle_deg:g}], "
                f"got {self.up_tolerance_deg!r}"
            )
        if not 5.0 <= self.horizon_sep_deg <= 90.0:
            raise ValueError(f"horizon_sep_deg must be in [5, 90], got {self.horizon_sep_deg!r}")


@dataclass(frozen=True)
class LinesUp:
    """One frame's up from its lines: `up_3` (unit, pointing up), or None with `code` and
    `reason`; `lines` inlier segments of `candidates` (near the prior's vertical; for the
    horizon, the segments the vertical search left); `source`: "vertical" or "horizon"."""

    up_3: tuple[float, float, float] | None
    code: str
    reason: str
    lines: int
    candidates: int
    angle_to_prior_deg: float = float("nan")
    source: str = "vertical"


_LSD = threading.local()  # one detector per thread: OpenCV's keeps per-call state and drops the GIL


def line_segments(image: np.ndarray) -> np.ndarray:
    """(N, 4) float64 segments x1, y1, x2, y2 in pixels of an HxW grey or HxWx3 RGB image (uint8,
    or float in [0, 1]); pixel centres at integers."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    if img.ndim != 2:
        raise ValueError(f"image must be HxW or HxWx3, got shape {np.asarray(image).shape}")
    if img.dtype != np.uint8:
        img = np.asarray(img, dtype=np.float64)
        if img.size and np.nanmax(img) <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(np.nan_to_num(img)), 0, 255).astype(np.uint8)
    detector = getattr(_LSD, "detector", None)
    if detector is None:
        detector = _LSD.detector = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
    found = detector.detect(np.ascontiguousarray(img))[0]
    if found is None:
        return np.zeros((0, 4))
    return found.reshape(-1, 4).astype(np.float64)


def _k_inverse(projection: Sequence[float] | np.ndarray) -> np.ndarray:
    m = np.asarray(projection, dtype=np.float64).reshape(-1)
    if m.size not in (9, 12) or not np.isfinite(m).all():
        raise ValueError(
            f"projection must be a finite 3x3 K or 3x4 P (9 or 12 values), got {m.size} values"
        )
    k_33 = m.reshape(3, 3) if m.size == 9 else m.reshape(3, 4)[:, :3]
    return np.linalg.inv(k_33)


def _angles_deg(n_N3: np.ndarray, u_H3: np.ndarray) -> np.ndarray:
    """(N, H): the angle between each segment's plane and each up."""
    return np.degrees(np.arcsin(np.clip(np.abs(n_N3 @ u_H3.T), 0.0, 1.0)))


def _segment_planes(
    image: np.ndarray, projection: Sequence[float] | np.ndarray, min_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each long enough segment's interpretation plane: (N, 3) unit normals in the camera frame
    and (N,) lengths in pixels."""
    k_inv_33 = _k_inverse(projection)
    seg_N4 = line_segments(image)
    h, w = np.asarray(image).shape[:2]
    length_N = np.hypot(seg_N4[:, 2] - seg_N4[:, 0], seg_N4[:, 3] - seg_N4[:, 1])
    keep = length_N >= min_length * max(h, w)
    seg_N4, length_N = seg_N4[keep], length_N[keep]
    ones_N1 = np.ones((len(seg_N4), 1))
    a_N3 = np.concatenate([seg_N4[:, :2], ones_N1], axis=1) @ k_inv_33.T
    b_N3 = np.concatenate([seg_N4[:, 2:], ones_N1], axis=1) @ k_inv_33.T
    n_N3 = np.cross(a_N3, b_N3)
    n_N3 /= np.maximum(np.linalg.norm(n_N3, axis=1, keepdims=True), 1e-12)
    return n_N3, length_N


def _pair_directions(n_N3: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """(H, 3) unit directions where two different segments' planes meet (RANSAC hypotheses)."""
    m = len(n_N3)
    i_H = rng.integers(0, m, count)
    j_H = (i_H + rng.integers(1, m, count)) % m  # a different segment
    d_H3 = np.cross(n_N3[i_H], n_N3[j_H])
    norm_H = np.linalg.norm(d_H3, axis=1)
    ok_H = norm_H > 1e-6
    return d_H3[ok_H] / norm_H[ok_H, None]


def _spread(n_N3: np.ndarray, length_N: np.ndarray) -> float:
    """How the segments' planes fan out around their common direction: the middle over the
    largest eigenvalue of the length-weighted scatter of their normals (0: one plane)."""
    w_3 = np.linalg.eigvalsh((n_N3 * length_N[:, None]).T @ n_N3)
    return float(w_3[1] / max(w_3[2], 1e-12))


def _refit_direction(n_N3: np.ndarray, length_N: np.ndarray) -> np.ndarray:
    """The unit direction d minimising sum(length * (n . d)^2): the smallest eigenvector."""
    _, vecs_33 = np.linalg.eigh((n_N3 * length_N[:, None]).T @ n_N3)
    return vecs_33[:, 0]


def up_from_vertical_lines(
    image: np.ndarray,
    projection: Sequence[float] | np.ndarray,
    prior_up_3: Sequence[float] | np.ndarray,
    cfg: VerticalLinesConfig = VerticalLinesConfig(),
) -> LinesUp:
    """The world's up in the camera frame from the image's vertical segments (module docstring),
    or None and why. `projection`: the image's K or P; `prior_up_3`: the expected up
    (`ground_plane.expected_up` of the mount's pitch and roll). `up_from_lines` without the
    horizon."""
    return up_from_lines(image, projection, prior_up_3, replace(cfg, horizon_vps=0))


def up_from_lines(
    image: np.ndarray,
    projection: Sequence[float] | np.ndarray,
    prior_up_3: Sequence[float] | np.ndarray,
    cfg: VerticalLinesConfig = VerticalLinesConfig(),
) -> LinesUp:
    """The up from the vertical lines, else (refused for any reason) from the horizon's
    vanishing points (module docstring), or None and why; arguments as
    `up_from_vertical_lines`."""
    prior_3 = _unit(prior_up_3)
    n_N3, length_N = _segment_planes(image, projection, cfg.min_length)
    found = _vertical(n_N3, length_N, prior_3, cfg)
    if found.up_3 is not None or cfg.horizon_vps == 0:
        return found
    horizon = _horizon(n_N3, length_N, prior_3, cfg)
    if horizon.up_3 is not None:
        return horizon
    return replace(found, reason=f"{found.reason}; horizon: {horizon.reason}")


def _unit(prior_up_3: Sequence[float] | np.ndarray) -> np.ndarray:
    prior_3 = np.asarray(prior_up_3, dtype=np.float64).reshape(3)
    return prior_3 / np.linalg.norm(prior_3)


def _horizon(
    n_N3: np.ndarray, length_N: np.ndarray, prior_3: np.ndarray, cfg: VerticalLinesConfig
) -> LinesUp:
    """The up as the normal of the horizon through two horizontal families' vanishing points,
    found among the segments that are not vertical candidates (module docstring)."""
    near_horizon = math.sin(math.radians(cfg.max_angle_deg))
    inlier = math.sin(math.radians(cfg.inlier_deg))
    rest = _angles_deg(n_N3, prior_3[None])[:, 0] > cfg.max_angle_deg
    n_N3, length_N = n_N3[rest], length_N[rest]
    m = len(n_N3)
    rng = np.random.default_rng(cfg.seed)
    free_N = np.ones(m, dtype=bool)
    vps: list[tuple[np.ndarray, float, int]] = []  # (direction, support, segments)
    for _ in range(cfg.horizon_vps):
        idx = np.flatnonzero(free_N)
        if len(idx) < cfg.horizon_min_lines:
            break
        d_H3 = _pair_directions(n_N3[idx], rng, cfg.hypotheses)
        d_H3 = d_H3[np.abs(d_H3 @ prior_3) <= near_horizon]
        if len(d_H3) == 0:
            break
        score_H = ((np.abs(n_N3[idx] @ d_H3.T) <= inlier) * length_N[idx, None]).sum(axis=0)
        d_3 = d_H3[int(np.argmax(score_H))]
        for _ in range(cfg.refits):
            inl = idx[np.abs(n_N3[idx] @ d_3) <= inlier]
            if len(inl) < cfg.horizon_min_lines:
                break
            d_3 = _refit_direction(n_N3[inl], length_N[inl])
        inl = idx[np.abs(n_N3[idx] @ d_3) <= inlier]
        if len(inl) < cfg.horizon_min_lines or abs(float(d_3 @ prior_3)) > near_horizon:
            break
        free_N[inl] = False
        if _spread(n_N3[inl], length_N[inl]) < cfg.min_spread:
            continue  # pieces of one line: no vanishing point; the next family may be one
        vps.append((d_3, float(length_N[inl].sum()), len(inl)))
    best: tuple[float, int, int] | None = None  # the pair whose weaker family is strongest
    for a in range(len(vps)):
        for b in range(a + 1, len(vps)):
            apart = math.degrees(math.acos(min(1.0, abs(float(vps[a][0] @ vps[b][0])))))
            support = min(vps[a][1], vps[b][1])
            if apart >= cfg.horizon_sep_deg and (best is None or support > best[0]):
                best = (support, a, b)
    if best is None:
        why = (
            f"{len(vps)} horizontal vanishing points of {cfg.horizon_min_lines}+ segments, "
            f"none two {cfg.horizon_sep_deg:g}+ deg apart"
        )
        return LinesUp(None, "few_inliers", why, 0, m, source="horizon")
    (va_3, _, na), (vb_3, _, nb) = vps[best[1]], vps[best[2]]
    u_3 = np.cross(va_3, vb_3)
    u_3 = u_3 / np.linalg.norm(u_3)
    u_3 = u_3 if u_3 @ prior_3 >= 0.0 else -u_3
    angle = math.degrees(math.acos(min(1.0, float(u_3 @ prior_3))))
    if angle > cfg.up_tolerance_deg:
        why = f"the horizon's up is {angle:.1f} deg from the prior "
        why += f"(tolerance {cfg.up_tolerance_deg:g})"
        return LinesUp(None, "far_from_prior", why, na + nb, m, angle, "horizon")
    up = (float(u_3[0]), float(u_3[1]), float(u_3[2]))
    return LinesUp(up, "ok", "ok", na + nb, m, angle, "horizon")


def _vertical(
    n_N3: np.ndarray, length_N: np.ndarray, prior_3: np.ndarray, cfg: VerticalLinesConfig
) -> LinesUp:
    """The up where the near-vertical segments' planes meet (module docstring, steps 3-6)."""
    near = _angles_deg(n_N3, prior_3[None])[:, 0] <= cfg.max_angle_deg
    n_N3, length_N = n_N3[near], length_N[near]
    m = len(n_N3)

    def refused(code: str, reason: str, lines: int = 0) -> LinesUp:
        return LinesUp(None, code, reason, lines, m)

    if m < cfg.min_lines:
        return refused(
            "few_lines",
            f"{m} segments near the vertical (need {cfg.min_lines}): no vertical structure in view",
        )
    u_H3 = _pair_directions(n_N3, np.random.default_rng(cfg.seed), cfg.hypotheses)
    u_H3 *= np.sign(u_H3 @ prior_3)[:, None] + (u_H3 @ prior_3 == 0.0)[:, None]
    u_H3 = u_H3[np.degrees(np.arccos(np.clip(u_H3 @ prior_3, -1.0, 1.0))) <= cfg.max_angle_deg]
    if len(u_H3) == 0:
        return refused("few_inliers", "no two segments meet near the prior's up")
    score_H = ((_angles_deg(n_N3, u_H3) <= cfg.inlier_deg) * length_N[:, None]).sum(axis=0)
    u_3 = u_H3[int(np.argmax(score_H))]
    inl_N = np.zeros(m, dtype=bool)
    for _ in range(cfg.refits):
        inl_N = _angles_deg(n_N3, u_3[None])[:, 0] <= cfg.inlier_deg
        if inl_N.sum() < cfg.min_lines:
            return refused(
                "few_inliers",
                f"{int(inl_N.sum())} segments agree on one up (need {cfg.min_lines})",
                int(inl_N.sum()),
            )
        u_3 = _refit_direction(n_N3[inl_N], length_N[inl_N])
        u_3 = u_3 if u_3 @ prior_3 >= 0 else -u_3
    angle = math.degrees(math.acos(min(1.0, float(u_3 @ prior_3))))
    spread = _spread(n_N3[inl_N], length_N[inl_N])
    if spread < cfg.min_spread:
        return LinesUp(
            None,
            "one_line",
            f"the {int(inl_N.sum())} segments that agree lie along one image line (spread "
            f"{spread:.1e} < {cfg.min_spread:g}): they do not fix the up",
            int(inl_N.sum()),
            m,
            angle,
        )
    if angle > cfg.up_tolerance_deg:
        return LinesUp(
            None,
            "far_from_prior",
            f"the lines' up is {angle:.1f} deg from the prior (tolerance {cfg.up_tolerance_deg:g})",
            int(inl_N.sum()),
            m,
            angle,
        )
    if cfg.rival_ratio < 1.0:  # the best other up among the hypotheses, on the segments left out
        apart_H = np.degrees(np.arccos(np.clip(u_H3 @ u_3, -1.0, 1.0))) >= cfg.rival_deg
        if apart_H.any():
            rest_N = ~inl_N
            rival_H = (
                (_angles_deg(n_N3[rest_N], u_H3[apart_H]) <= cfg.inlier_deg)
                * length_N[rest_N, None]
            ).sum(axis=0)
            ratio = float(rival_H.max() / length_N[inl_N].sum())
            if ratio >= cfg.rival_ratio:
                return LinesUp(
                    None,
                    "ambiguous",
                    f"another family of lines, {cfg.rival_deg:g}+ deg from the up, has "
                    f"{ratio:.0%} of its support (a slanted texture?)",
                    int(inl_N.sum()),
                    m,
                    angle,
                )
    up = (float(u_3[0]), float(u_3[1]), float(u_3[2]))
    return LinesUp(up, "ok", "ok", int(inl_N.sum()), m, angle)


def frame_lines_up(
    image: np.ndarray | None,
    shape: tuple[int, ...],
    projection: Sequence[float] | np.ndarray,
    prior_up_3: Sequence[float] | np.ndarray,
    cfg: VerticalLinesConfig = VerticalLinesConfig(),
) -> tuple[np.ndarray | None, str, str]:
    """A frame's up from its lines as the node and the replay use it: (up, "vertical_lines
    (N lines)", "ok") or (up, "horizon (N lines)", "horizon"), or (None, "prior (why)", code) to
    fall back to the mount prior. `shape`: the depth's HxW, at which `projection` is given; an
    image of another size is not used; `prior_up_3`: the mount's up
    (`ground_plane.expected_up`)."""
    if image is None or tuple(np.asarray(image).shape[:2]) != tuple(shape[:2]):
        return None, "prior (no image at the depth's size for the vertical lines)", "no_image"
    found = up_from_lines(image, projection, prior_up_3, cfg)
    if found.up_3 is None:
        return None, f"prior ({found.reason})", found.code
    if found.source == "horizon":
        return np.array(found.up_3), f"horizon ({found.lines} lines)", "horizon"
    return np.array(found.up_3), f"vertical_lines ({found.lines} lines)", "ok"
