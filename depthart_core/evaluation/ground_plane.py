"""How metric is depth scaled from the floor? Rendered camera paths at known heights, scored
with no per-frame alignment against the same predictions median-aligned per frame.

Each rig is a camera height and a mounting pitch (a wheeled robot at 0.3 m looking ahead, a cart
at 1.0 m tilted 10 deg down, a mast at 2.0 m tilted 25 deg down: from 2 m up, a level camera in a
3-7 m room sees mostly walls in the lower half of its image). For each, `sequences` rooms are
rendered along the synthetic generator's smooth path (an elliptical walk: the camera turns all the
time; the path itself looks 0-20 deg down), tilted by the mount and by a pitch wobble on top (a
robot on bumps, a pan-tilt: `pitch_wobble_deg`), every `frame_step`-th frame of the path. The fit
is given the height and the mounting pitch as its prior, as a robot's URDF would give them; the
rest of the pitch it finds itself. Each frame's relative
depth (the model's, or the ground truth's as a check of the geometry) goes through
`ground_plane.GroundPlaneScale` with the rig's known height, as the node would run it, and:

- metric AbsRel: scale (the smoothed one the node would apply) x prediction vs the true depth,
  over the frames where a scale was applied;
- aligned AbsRel: median(gt / pred) x prediction per frame (the DepthART paper's alignment),
  on the same frames; the ratio metric / aligned is what issue #26 bounds at 1.25;
- fallbacks: frames without a scale (relative output) by reason code;
- floor oracle: the frame scaled by median(gt / pred) over its true floor pixels (`true_floor`),
  the best a floor-based scale can do with this depth; its ratio bounds what any fit could reach.

`up_source="true"` gives the fit each frame's true up (with `up_noise_deg` of noise) instead of
the mount prior: what a per-frame gravity measurement, an IMU's attitude, would give.
`up_source="lines"` gives it the up of the frame's own vertical lines, else its horizon's
vanishing points (camera only, `depthart_core.vertical_lines`), and the mount prior in a frame
where they give none.

The relative depth is proportional to the metric one, so with the ground truth in place of the
prediction the metric AbsRel measures the plane fit alone (0 if the floor were found exactly).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from depthart_core.data.sample import DepthSample
from depthart_core.data.synthetic.config import Scene, SynthConfig
from depthart_core.data.synthetic.render import (
    MAX_SEED,
    batch_sample,
    render_scenes,
    sequence_scenes,
)
from depthart_core.data.synthetic.scene import look_rotation
from depthart_core.evaluation.alignment import median_scale_pairs
from depthart_core.evaluation.metrics import PAIR_METRICS, PixelPairs, masked_pairs
from depthart_core.evaluation.uncertainty_metrics import scaled_pixels
from depthart_core.ground_plane import (
    NORMALS,
    GroundPlaneConfig,
    GroundPlaneScale,
    apply_floor_scale,
    expected_up,
)
from depthart_core.vertical_lines import up_from_lines

# name -> (camera height [m], mounting pitch [deg], positive down)
RIGS: dict[str, tuple[float, float]] = {
    "wheeled": (0.3, 0.0),
    "cart": (1.0, 10.0),
    "mast": (2.0, 25.0),
}
UP_SOURCES = ("prior", "true", "lines")
FLOOR_TOLERANCE_M = 0.02  # a true point this close to the floor's height is a floor pixel
SEED_STRIDE = 100_000  # `room_seed`: a rig's rooms draw from seed x this + an offset below it
Predict = Callable[[np.ndarray], np.ndarray]  # HxWx3 uint8 RGB -> HxW relative depth


def room_seed(seed: int, height_m: float, sequence: int) -> int:
    """The generator's seed of a rig's rooms: rooms differ by seed, rig height and sequence."""
    return seed * SEED_STRIDE + round(height_m * 100) * 100 + sequence


def max_rig_seed(height_m: float, sequences: int = 1) -> int:
    """The largest seed whose `room_seed`s, for sequences 0 .. `sequences`-1, the generator
    takes (at most `MAX_SEED`): 42949 for each of `RIGS`."""
    return (MAX_SEED - room_seed(0, height_m, max(0, sequences - 1))) // SEED_STRIDE


@dataclass(frozen=True)
class RigEval:
    """One rig's run: how many frames, which paths and what the fit was given."""

    height_m: float
    mount_pitch_deg: float = 0.0  # the camera's tilt on the robot, and the fit's prior
    sequences: int = 2
    frames: int = 15  # per sequence
    frame_step: int = 10  # frames of the path between two rendered frames
    # True: a robot's path (the body level, the camera at its mount pitch, bumps on top); False:
    # the generator's hand-held path, which also looks 0-20 deg down, a pitch the prior lacks
    level_path: bool = True
    pitch_wobble_deg: float = 3.0  # amplitude of the bumps, period 9 frames
    roll_wobble_deg: float = 2.0  # period 13 frames
    size: tuple[int, int] = (120, 160)  # H, W
    seed: int = 0
    ground: GroundPlaneConfig = field(default_factory=GroundPlaneConfig)
    # where the fit's up comes from: "prior" (the mount's pitch: the wobble unknown, as the node
    # runs) or "true" (each frame's true up, rotated by `up_noise_deg` of Gaussian noise per axis:
    # what a per-frame gravity measurement such as an IMU's would give)
    up_source: str = "prior"
    up_noise_deg: float = 0.0

    def __post_init__(self) -> None:
        top = max_rig_seed(self.height_m, self.sequences)
        if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed <= top:
            raise ValueError(
                f"seed {self.seed!r} with a rig at {self.height_m:g} m: must be an int from 0 "
                f"to {top} (its rooms' seeds are seed x {SEED_STRIDE} + the height in cm x 100 "
                f"+ the sequence, below 2**32)"
            )
        if self.up_source not in UP_SOURCES:
            raise ValueError(f"up_source must be one of {UP_SOURCES}, got {self.up_source!r}")
        if not (math.isfinite(self.up_noise_deg) and self.up_noise_deg >= 0.0):
            raise ValueError(f"up_noise_deg must be finite and >= 0, got {self.up_noise_deg}")

    @classmethod
    def named(cls, rig: str, **settings) -> RigEval:
        """One of `RIGS` (its height and mounting pitch) with the other settings given."""
        if rig not in RIGS:
            raise ValueError(f"rig must be one of {sorted(RIGS)}, got {rig!r}")
        height, mount = RIGS[rig]
        return cls(height_m=height, mount_pitch_deg=mount, **settings)

    def synth_config(self) -> SynthConfig:
        """The generator's room settings with the camera held at exactly `height_m`."""
        h = self.height_m
        return SynthConfig(
            size=self.size, camera_height=(h, h), room_height=(max(2.4, h + 0.4), 3.2)
        )


def tilt(scenes: list[Scene], rig: RigEval) -> list[Scene]:
    """The scenes' cameras levelled (if `rig.level_path`), then pitched down by the mount plus a
    pitch wobble and rolled by a roll wobble, about their own axes."""
    out = []
    for i, sc in enumerate(scenes):
        cam_R = sc.cam_R
        if rig.level_path:
            fwd = cam_R[:, 2] * np.array([1.0, 0.0, 1.0])  # world y up: drop the path's pitch
            cam_R = look_rotation(fwd)
        p = math.radians(rig.mount_pitch_deg + rig.pitch_wobble_deg * math.sin(2 * math.pi * i / 9))
        r = math.radians(rig.roll_wobble_deg * math.sin(2 * math.pi * i / 13))
        cp, sp, cr, sr = math.cos(p), math.sin(p), math.cos(r), math.sin(r)
        pitch_33 = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])  # about x (right)
        roll_33 = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])  # about z (forward)
        out.append(dataclasses.replace(sc, cam_R=cam_R @ pitch_33 @ roll_33))
    return out


def rig_scenes(rig: RigEval, sequence: int) -> list[Scene]:
    """One sequence's cameras: every `frame_step`-th of the path, tilted (`tilt`)."""
    n_path = rig.frames * rig.frame_step
    seed = room_seed(rig.seed, rig.height_m, sequence)
    return tilt(sequence_scenes(seed, n_path, rig.synth_config())[:: rig.frame_step], rig)


def rig_frames(rig: RigEval, sequence: int) -> dict:
    """One sequence's rendered frames: rgb (B, 3, H, W), depth, valid, K, pose (`render_scenes`)."""
    return render_scenes(rig_scenes(rig, sequence), rig.synth_config())


def iter_rig_samples(rig: RigEval, sequence: int, chunk: int = 16) -> Iterator[DepthSample]:
    """`rig_frames` as DepthSamples (HxWx3 uint8 RGB, metres, K, pose in extras), for bags,
    rendered `chunk` frames at a time: memory does not grow with the frames, and each frame is
    the one `rig_frames` renders, byte for byte (a scene renders alone in any batch)."""
    scenes, cfg = rig_scenes(rig, sequence), rig.synth_config()
    name = f"rig_{rig.height_m:g}m_{rig.seed}_{sequence}"
    for c0 in range(0, len(scenes), chunk):
        out = render_scenes(scenes[c0 : c0 + chunk], cfg)
        for i in range(out["rgb"].shape[0]):
            yield batch_sample(out, i, f"{name}_{c0 + i:06d}")


def rig_samples(rig: RigEval, sequence: int) -> list[DepthSample]:
    """`iter_rig_samples` as a list."""
    return list(iter_rig_samples(rig, sequence))


@dataclass
class SourceStats:
    """Per-frame records of one depth source (the model or the ground truth) on one rig."""

    metric: list[float] = field(default_factory=list)  # AbsRel, frames with a scale applied
    aligned: list[float] = field(default_factory=list)  # AbsRel after median scaling, same frames
    aligned_all: list[float] = field(default_factory=list)  # every frame
    scale_err: list[float] = field(default_factory=list)  # applied / median-aligned scale - 1
    # AbsRel with the scale median(gt / pred) over the true floor pixels of the image's lower half,
    # same frames as `metric`: the best any floor-based scale can do with this depth
    floor_oracle: list[float] = field(default_factory=list)
    normal_err_deg: list[float] = field(default_factory=list)  # fitted normal vs the true up
    fallbacks: Counter = field(default_factory=Counter)
    frames: int = 0


def true_floor(
    gt_HW: np.ndarray, valid_HW: np.ndarray, K_33: np.ndarray, up_3: np.ndarray, height_m: float
) -> np.ndarray:
    """(H, W) bool: valid pixels of the image's lower half whose true 3-D point lies within
    `FLOOR_TOLERANCE_M` of the floor (`height_m` below the camera along the true up `up_3`)."""
    h, w = gt_HW.shape
    v_HW, u_HW = np.mgrid[0:h, 0:w].astype(np.float64)
    ray_HW3 = np.stack(
        [(u_HW - K_33[0, 2]) / K_33[0, 0], (v_HW - K_33[1, 2]) / K_33[1, 1], np.ones((h, w))],
        axis=-1,
    )
    below_HW = -(ray_HW3 @ up_3) * gt_HW
    floor_HW = valid_HW & (np.abs(below_HW - height_m) < FLOOR_TOLERANCE_M)
    floor_HW[: h // 2] = False
    return floor_HW


def noisy_up(up_3: np.ndarray, noise_deg: float, rng: np.random.Generator) -> np.ndarray:
    """`up_3` rotated by a random small rotation: Gaussian angles of `noise_deg` about each axis."""
    if noise_deg == 0.0:
        return up_3
    axis_3 = np.radians(rng.normal(0.0, noise_deg, 3))
    angle = float(np.linalg.norm(axis_3))
    k_3 = axis_3 / angle
    cross_33 = np.array([[0.0, -k_3[2], k_3[1]], [k_3[2], 0.0, -k_3[0]], [-k_3[1], k_3[0], 0.0]])
    rot_33 = np.eye(3) + math.sin(angle) * cross_33 + (1.0 - math.cos(angle)) * cross_33 @ cross_33
    return rot_33 @ up_3


def _abs_rel(p: np.ndarray, g: np.ndarray) -> float:
    return PAIR_METRICS["abs_rel"](PixelPairs(p, g))


def score_frame(
    stats: SourceStats,
    state: GroundPlaneScale,
    rel_HW: np.ndarray,
    gt_HW: np.ndarray,
    valid_HW: np.ndarray,
    K_33: np.ndarray,
    up_3: np.ndarray,
    fit_up_3: np.ndarray | None = None,
    floor_HW: np.ndarray | None = None,
) -> None:
    """Fit, smooth and score one frame into `stats`. `fit_up_3` is the up given to the fit (None:
    the prior's); `floor_HW` (`true_floor`) enables the floor oracle."""
    stats.frames += 1
    rel_HW = np.asarray(rel_HW)
    valid_HW = valid_HW & np.isfinite(rel_HW)
    p, g = masked_pairs(rel_HW, gt_HW, valid_HW)  # once: every AbsRel below scores these pixels
    s_med = median_scale_pairs(p, g)
    aligned = _abs_rel(scaled_pixels(p, s_med, rel_HW.dtype), g)
    stats.aligned_all.append(aligned)
    fit, applied = state.update(rel_HW, K_33, None, fit_up_3)
    if fit.code == "ok":
        cos = float(np.clip(np.dot(fit.normal_3, up_3), -1.0, 1.0))
        stats.normal_err_deg.append(math.degrees(math.acos(cos)))
    if applied.scale is None:
        stats.fallbacks[fit.code] += 1
        return
    metric_HW = apply_floor_scale(rel_HW, K_33, applied.scale, fit)
    m = metric_HW[valid_HW].astype(np.float64)
    finite = np.isfinite(m)  # a pixel whose metres overflow is left out
    if not finite.all():
        if not finite.any():
            raise ValueError("valid mask is empty: no pixel to score")
        m, g_m = m[finite], g[finite]
    else:
        g_m = g
    stats.metric.append(_abs_rel(m, g_m))
    stats.aligned.append(aligned)
    stats.scale_err.append(applied.scale / s_med - 1.0)
    if floor_HW is not None:
        floor_HW = floor_HW & valid_HW
        s_floor = float(np.median(gt_HW[floor_HW] / rel_HW[floor_HW])) if floor_HW.any() else s_med
        stats.floor_oracle.append(_abs_rel(scaled_pixels(p, s_floor, rel_HW.dtype), g))


def evaluate_rig(
    rig: RigEval, predict: Predict | None, normals: tuple[str, ...] = NORMALS
) -> dict[tuple[str, str], SourceStats]:
    """{(source, normal): stats} for source "model" (absent when `predict` is None) and "gt",
    and each `ground_plane` normal mode, over the rig's frames."""
    ground = dataclasses.replace(
        rig.ground, camera_height_m=rig.height_m, pitch_deg=rig.mount_pitch_deg
    )
    keys = [(src, nm) for src in (["gt"] if predict is None else ["model", "gt"]) for nm in normals]
    stats = {key: SourceStats() for key in keys}
    rng = np.random.default_rng(rig.seed)  # the up's noise: the same draws for every source
    ground_prior_3 = expected_up(rig.mount_pitch_deg)
    for seq in range(rig.sequences):
        out = rig_frames(rig, seq)
        # one stream state per camera path, as a node restarted for each recording
        # the tilt measures along the up: only the "prior" normal takes it
        states = {
            k: GroundPlaneScale(
                dataclasses.replace(ground, normal=k[1], tilt=ground.tilt * (k[1] == "prior"))
            )
            for k in keys
        }
        for i in range(out["rgb"].shape[0]):
            gt_HW = out["depth"][i].numpy().astype(np.float64)
            valid_HW = out["valid"][i].numpy()
            K_33 = out["K"][i].numpy().astype(np.float64)
            up_3 = out["pose"][i, :3, :3].numpy().T @ np.array([0.0, 1.0, 0.0])  # world y up
            fit_up_3 = None
            if rig.up_source == "true":
                fit_up_3 = noisy_up(up_3, rig.up_noise_deg, rng)
            elif (
                rig.up_source == "lines"
            ):  # camera only: the image's vertical lines (else the horizon), else the prior
                lines = up_from_lines(out["rgb"][i].permute(1, 2, 0).numpy(), K_33, ground_prior_3)
                fit_up_3 = None if lines.up_3 is None else np.array(lines.up_3)
            floor_HW = true_floor(gt_HW, valid_HW, K_33, up_3, rig.height_m)
            rels = {"gt": np.where(valid_HW, gt_HW, np.nan)}
            if predict is not None:
                rgb_HW3 = out["rgb"][i].permute(1, 2, 0).numpy()
                rels["model"] = np.asarray(predict(rgb_HW3), dtype=np.float64)
            for key in keys:
                score_frame(
                    stats[key],
                    states[key],
                    rels[key[0]],
                    gt_HW,
                    valid_HW,
                    K_33,
                    up_3,
                    fit_up_3,
                    floor_HW,
                )
    return stats


def summary_row(name: str, rig: RigEval, key: tuple[str, str], st: SourceStats) -> dict:
    """One table row: means over frames, the ratio, and the fallbacks by reason."""

    def mean(x: list[float]) -> float:
        return float(np.mean(x)) if x else float("nan")

    metric, aligned = mean(st.metric), mean(st.aligned)
    oracle = mean(st.floor_oracle)
    return {
        "rig": name,
        "height_m": rig.height_m,
        "mount_pitch_deg": rig.mount_pitch_deg,
        "source": key[0],
        "normal": key[1],
        "frames": st.frames,
        "scaled": len(st.metric),
        "metric_abs_rel": metric,
        "aligned_abs_rel": aligned,
        "ratio": metric / aligned if aligned > 0 else float("nan"),
        "floor_oracle_ratio": oracle / aligned if aligned > 0 else float("nan"),
        "up_source": rig.up_source + (f" +-{rig.up_noise_deg:g} deg" if rig.up_noise_deg else ""),
        "aligned_abs_rel_all": mean(st.aligned_all),
        "median_scale_err": float(np.median(np.abs(st.scale_err))) if st.scale_err else math.nan,
        "median_normal_err_deg": float(np.median(st.normal_err_deg))
        if st.normal_err_deg
        else math.nan,
        "fallbacks": dict(sorted(st.fallbacks.items())),
    }


def format_table(rows: list[dict[str, object]]) -> str:
    """A Markdown table of `summary_row`s."""
    head = (
        "| rig | height, mount pitch | depth | normal | up | frames scaled | metric AbsRel | "
        "aligned AbsRel | ratio | floor-oracle ratio | aligned AbsRel (all) | "
        "median abs scale err | median normal err [deg] | fallbacks |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        fallbacks: dict = r["fallbacks"]  # type: ignore[assignment]
        falls = ", ".join(f"{k} {v}" for k, v in fallbacks.items()) or "none"
        rig = f"{r['rig']} | {r['height_m']:.1f} m, {r['mount_pitch_deg']:g} deg"
        rig += f" | {r['source']} | {r['normal']} | {r['up_source']}"
        lines.append(
            f"| {rig} | {r['scaled']}/{r['frames']} | {r['metric_abs_rel']:.3f} | "
            f"{r['aligned_abs_rel']:.3f} | {r['ratio']:.2f} | {r['floor_oracle_ratio']:.2f} | "
            f"{r['aligned_abs_rel_all']:.3f} | "
            f"{r['median_scale_err']:.3f} | {r['median_normal_err_deg']:.1f} | {falls} |"
        )
    return "\n".join(lines)
