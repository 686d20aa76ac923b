"""The world's up from the image's vertical lines: a camera-only attitude for the floor's scale.

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
6. guards, each a code and a reason instead of an up: too few segments, too few inliers, a
   refit that left the prior's tolerance, and a rival: among the segments the up leaves out,
   another family agreeing on an up `rival_deg` away with `rival_ratio` of the up's support
   (a ratio test, as in feature matching: two strong answers mean neither is trusted). Walls
   whose texture has slanted near-vertical joints fooled the lines without it (BENCHMARKS 10).

Frames: the REP 103 optical frame (x right, y down, z forward), the same up as `expected_up`.
The scene must have vertical structure: outdoors among trees, or in a room seen from the floor
at a blank wall, there may be none, and the caller falls back to the prior (the node says so).
At low resolution the edges are too short and too aliased for a fraction of a degree: on the
renderer's 120x160 frames the error was several degrees, at 480x640 a few tenths (BENCHMARKS 10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

LINES_CODES = ("ok", "few_lines", "few_inliers", "far_from_prior", "ambiguous")


@dataclass(frozen=True)
class VerticalLinesConfig:
    """How vertical segments are found and trusted; angles in degrees."""

    max_angle_deg: float = 10.0  # the up's tolerance around the prior (mount pitch plus bumps)
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
        if not 0.0 < self.rival_ratio <= 1.0:
            raise ValueError(f"rival_ratio must be in (0, 1], got {self.rival_ratio!r}")
        if not self.inlier_deg <= self.rival_deg <= 2.0 * self.max_angle_deg:
            raise ValueError(
                f"rival_deg must be in [inlier_deg={self.inlier_deg:g}, "
                f"2 * max_angle_deg={2.0 * self.max_angle_deg:g}], got {self.rival_deg!r}"
            )


@dataclass(frozen=True)
class LinesUp:
    """One frame's up from its vertical lines: `up_3` (unit, pointing up), or None with `code`
    and `reason`; `lines` inlier segments of `candidates` near the prior's vertical."""

    up_3: tuple[float, float, float] | None
    code: str
    reason: str
    lines: int
    candidates: int
    angle_to_prior_deg: float = float("nan")


_LSD = None


def line_segments(image: np.ndarray) -> np.ndarray:
    """(N, 4) float64 segments x1, y1, x2, y2 in pixels of an HxW grey or HxWx3 RGB image (uint8,
    or float in [0, 1]); pixel centres at integers."""
    global _LSD
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
    if _LSD is None:
        _LSD = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
    found = _LSD.detect(np.ascontiguousarray(img))[0]
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


def up_from_vertical_lines(
    image: np.ndarray,
    projection: Sequence[float] | np.ndarray,
    prior_up_3: Sequence[float] | np.ndarray,
    cfg: VerticalLinesConfig = VerticalLinesConfig(),
) -> LinesUp:
    """The world's up in the camera frame from the image's vertical segments (module docstring),
    or None and why. `projection`: the image's K or P; `prior_up_3`: the expected up
    (`ground_plane.expected_up` of the mount's pitch and roll)."""
    prior_3 = np.asarray(prior_up_3, dtype=np.float64).reshape(3)
    prior_3 = prior_3 / np.linalg.norm(prior_3)
    k_inv_33 = _k_inverse(projection)
    seg_N4 = line_segments(image)
    h, w = np.asarray(image).shape[:2]
    length_N = np.hypot(seg_N4[:, 2] - seg_N4[:, 0], seg_N4[:, 3] - seg_N4[:, 1])
    keep = length_N >= cfg.min_length * max(h, w)
    seg_N4, length_N = seg_N4[keep], length_N[keep]
    ones_N1 = np.ones((len(seg_N4), 1))
    a_N3 = np.concatenate([seg_N4[:, :2], ones_N1], axis=1) @ k_inv_33.T
    b_N3 = np.concatenate([seg_N4[:, 2:], ones_N1], axis=1) @ k_inv_33.T
    n_N3 = np.cross(a_N3, b_N3)
    n_N3 /= np.maximum(np.linalg.norm(n_N3, axis=1, keepdims=True), 1e-12)
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
    rng = np.random.default_rng(cfg.seed)
    i_H = rng.integers(0, m, cfg.hypotheses)
    j_H = (i_H + rng.integers(1, m, cfg.hypotheses)) % m  # a different segment
    u_H3 = np.cross(n_N3[i_H], n_N3[j_H])
    norm_H = np.linalg.norm(u_H3, axis=1)
    ok_H = norm_H > 1e-6
    u_H3 = u_H3[ok_H] / norm_H[ok_H, None]
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
        nw_N3 = n_N3[inl_N] * length_N[inl_N, None]
        _, vecs_33 = np.linalg.eigh(nw_N3.T @ n_N3[inl_N])
        u_3 = vecs_33[:, 0] * (1.0 if vecs_33[:, 0] @ prior_3 >= 0 else -1.0)
    angle = math.degrees(math.acos(min(1.0, float(u_3 @ prior_3))))
    if angle > cfg.max_angle_deg:
        return LinesUp(
            None,
            "far_from_prior",
            f"the lines' up is {angle:.1f} deg from the prior (tolerance {cfg.max_angle_deg:g})",
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
    """A frame's up from its vertical lines as the node and the replay use it: (up, "vertical_lines
    (N lines)", "ok"), or (None, "prior (why)", code) to fall back to the mount prior. `shape`:
    the depth's HxW, at which `projection` is given; an image of another size is not used;
    `prior_up_3`: the mount's up (`ground_plane.expected_up`)."""
    if image is None or tuple(np.asarray(image).shape[:2]) != tuple(shape[:2]):
        return None, "prior (no image at the depth's size for the vertical lines)", "no_image"
    found = up_from_vertical_lines(image, projection, prior_up_3, cfg)
    if found.up_3 is None:
        return None, f"prior ({found.reason})", found.code
    return np.array(found.up_3), f"vertical_lines ({found.lines} lines)", "ok"
