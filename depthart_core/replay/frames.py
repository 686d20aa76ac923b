"""Rosbag replay, the part both modes share: config, frame matching, per-frame scoring, run state.

A replay reads the bag in two passes. Pass 1 (`index_bag`) collects the header stamps of every
image and GT depth and matches each image to the nearest GT stamp within `max_dt_s`; pass 2
(`iter_frames`) streams the images in recording order with their matched GT, buffering an image
only until its GT arrives. `score_frame` scores one prediction under an evaluation protocol
(`depthart_core.evaluation`) and gives the frame its status (see `STATUSES`). `ReplayRun` holds
the rows of a run, `PredictionStore` its predictions, and `write_prediction_bag` copies the bag
with the predictions added (`--write-bag`). Offline and live mode are in
`depthart_core.replay.offline` and `depthart_ros.replay.live`.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depthart_core.evaluation.protocols import evaluate, get_protocol
from depthart_core.fileutil import TEMP_SUFFIX, WriteError, npy_bytes
from depthart_core.ground_plane import (
    GroundPlaneConfig,
    GroundPlaneScale,
    apply_floor_scale,
    expected_up,
    frame_up,
    projection_p,
)
from depthart_core.metric_scale import fit_metric_scale
from depthart_core.rosio import bags, messages
from depthart_core.rosio.bags import BagError
from depthart_core.rosio.camera_info import aspect_problem, camera_info_problem
from depthart_core.rosio.image import image_projection
from depthart_core.rosio.messages import CAMERA_INFO_TYPE, IMAGE_TYPES, IMU_TYPE
from depthart_core.vertical_lines import frame_lines_up

log = logging.getLogger(__name__)

PROTOCOLS = ("depthart", "affine", "metric", "ground_plane")
STATUSES = ("evaluated", "predicted", "unmatched", "rejected", "dropped", "not_played")
SPARSE_FITS = ("scale", "scale_shift")


@dataclass(frozen=True)
class ReplayConfig:
    """What to read from the bag and how to score it (shared by offline and live mode)."""

    image_topic: str
    depth_topic: str | None = None
    camera_info_topic: str | None = None
    protocol: str = "depthart"
    max_dt_s: float = 0.02  # image <-> GT depth header stamp tolerance
    max_frames: int | None = None
    # (lo, hi] m: GT outside is not scored (nor drawn as a sparse cue), predictions clipped to it
    depth_range: tuple[float, float] | None = None
    sparse_points: int = 100  # metric protocol: GT pixels the scale fit sees (a LiDAR stand-in)
    sparse_fit: str = "scale"
    seed: int = 0
    n_samples: int = 4  # rows in samples.png
    plots: bool = True  # the three PNGs beside report.json / report.md
    pred_topic: str = "/depthart/depth"
    # ground_plane protocol: the floor fit and camera height that put the prediction in metres
    ground_plane: GroundPlaneConfig | None = None
    # ground_plane protocol with an IMU (the node's ground_plane.imu): each frame's up from the
    # attitude nearest its stamp within imu_max_dt_s, else the mount prior
    imu_topic: str | None = None
    imu_max_dt_s: float = 0.05
    # ground_plane protocol, camera only (the node's ground_plane.vertical_lines): each frame's
    # up from its image's vertical lines (else the horizon's vanishing points) where no IMU
    # attitude is in time, else the mount prior
    vertical_lines: bool = False

    def __post_init__(self) -> None:
        if not self.pred_topic.strip("/"):
            raise ValueError(f"pred_topic must name a topic, got {self.pred_topic!r}")
        if not self.pred_topic.startswith("/"):  # bags store fully qualified names
            object.__setattr__(self, "pred_topic", "/" + self.pred_topic)
        if self.imu_topic and self.protocol != "ground_plane":
            raise ValueError(
                f"the IMU topic {self.imu_topic!r} is only used by the ground_plane protocol "
                f"(got {self.protocol})"
            )
        if self.vertical_lines and self.protocol != "ground_plane":
            raise ValueError(
                f"vertical lines are only used by the ground_plane protocol (got {self.protocol})"
            )
        if not self.imu_max_dt_s >= 0:
            raise ValueError(f"imu_max_dt_s must be >= 0 s, got {self.imu_max_dt_s}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "ground_plane":
            if self.ground_plane is None:
                raise ValueError(
                    "the ground_plane protocol needs the camera's height above the floor "
                    "(--camera-height)"
                )
            if not self.camera_info_topic:
                raise ValueError(
                    "the ground_plane protocol back-projects through the camera's intrinsics: "
                    "give the camera info topic (--camera-info-topic)"
                )
            if not self.depth_topic:
                raise ValueError(
                    "the ground_plane protocol scores against GT depth: give the depth topic "
                    "(--depth-topic)"
                )
        if self.sparse_fit not in SPARSE_FITS:
            raise ValueError(f"sparse_fit must be one of {SPARSE_FITS}, got {self.sparse_fit!r}")
        if not 0 <= self.max_dt_s <= 3600:  # a stamp tolerance, not a duration
            raise ValueError(f"max_dt_s must lie in [0, 3600] s, got {self.max_dt_s}")
        if self.depth_range is not None:
            lo, hi = self.depth_range
            if not (0 <= lo < hi < math.inf):
                raise ValueError(
                    f"depth_range must be finite metres with 0 <= lo < hi, got ({lo:g}, {hi:g})"
                )
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.protocol == "metric" and not self.depth_topic:
            raise ValueError("the metric protocol fits the scale to GT depth: give depth_topic")
        if self.protocol == "metric" and self.sparse_points < 2:  # a fit needs two points
            raise ValueError(f"sparse_points must be >= 2, got {self.sparse_points}")
        if self.depth_topic and self.depth_topic == self.image_topic:
            raise ValueError(f"depth topic and image topic are the same: {self.image_topic!r}")

    @property
    def eval_protocol(self) -> str:
        """The evaluation protocol the scores use: both metric sources score metres unaligned."""
        return "metric" if self.protocol == "ground_plane" else self.protocol


# ------------------------------------------------------------------------------------------------
# Pass 1: stamps of every image and GT depth, and the nearest-stamp match


@dataclass
class BagIndex:
    """Image i (recording order) -> GT depth `match[i]` (recording order) or None."""

    image_stamps: list[int]
    image_frame_ids: list[str]
    depth_stamps: list[int]
    match: list[int | None]
    dt_ns: list[int | None]
    topics: dict[str, bags.TopicSummary]
    ros2: bool
    # with an IMU topic: image i -> the attitude (x, y, z, w) nearest its stamp, or None
    imu: list[tuple[float, float, float, float] | None] | None = None
    imu_no_orientation: int = 0  # IMU messages that said they carry none
    # the camera_info topic's first message (stamp, message): a driver publishes each image
    # just before its calibration, so a recording holds the first image before any calibration
    first_camera_info: tuple[int, Any] | None = None
    # camera_info messages the node would ignore (`camera_info_problem`), by cause
    camera_info_ignored: Counter[str] = field(default_factory=Counter)
    # images of the topic read (all of them, before `max_frames`), and how many the bag lists
    # (its metadata.yaml) where that is more: a cut or damaged recording (`short_note`)
    images_read: int = 0
    images_listed: int | None = None
    listed_by: str = "metadata.yaml"  # `bags.counts_source`

    @property
    def n_frames(self) -> int:
        return len(self.image_stamps)

    @property
    def short_note(self) -> str | None:
        """The note "read N of M images ..." where fewer images were read than the bag lists."""
        if self.images_listed is None:
            return None
        return (
            f"read {self.images_read} of {self.images_listed} images {self.listed_by} lists "
            "(a cut or damaged recording?)"
        )


def index_bag(bag: str | Path, cfg: ReplayConfig) -> BagIndex:
    """Validate the topics and match every image to the nearest GT depth stamp."""
    topics = bags.list_topics(bag)
    images = bags.check_topic(topics, cfg.image_topic, IMAGE_TYPES, bag)  # raw or compressed
    if images.count == 0:  # a report of 0 frames and exit 0 would read as a pass in a batch run
        raise BagError(f"topic {cfg.image_topic!r} in {bag} has no messages: nothing to replay")
    if cfg.depth_topic:
        bags.check_topic(topics, cfg.depth_topic, IMAGE_TYPES, bag)
    if cfg.camera_info_topic:
        bags.check_topic(topics, cfg.camera_info_topic, CAMERA_INFO_TYPE, bag)
    img, fids, dep = [], [], []
    first_info, ignored = None, Counter()
    wanted = [t for t in (cfg.image_topic, cfg.depth_topic, cfg.camera_info_topic) if t]
    for m in bags.iter_messages(bag, wanted):
        if m.topic == cfg.image_topic:
            img.append(m.stamp_ns)
            fids.append(m.msg.header.frame_id)
        elif m.topic == cfg.depth_topic:
            dep.append(m.stamp_ns)
        else:
            first_info = first_info or (m.stamp_ns, m.msg)
            problem = camera_info_problem(m.msg)
            if problem:
                ignored[problem[0]] += 1
    read = len(img)
    if cfg.max_frames is not None:
        img, fids = img[: cfg.max_frames], fids[: cfg.max_frames]
    match, dts = match_stamps(img, dep, round(cfg.max_dt_s * 1e9))
    if cfg.depth_topic:
        check_unique_stamps(bag, img, dep, match)
    index = BagIndex(img, fids, dep, match, dts, topics, bags.bag_is_ros2(bag))
    index.first_camera_info, index.camera_info_ignored = first_info, ignored
    index.images_read = read
    if read < images.count:  # the whole topic was read: --max-frames cuts only afterwards
        index.images_listed, index.listed_by = images.count, bags.counts_source(bag)
        log.warning("%s, topic %s: %s", bag, cfg.image_topic, index.short_note)
    if cfg.imu_topic:
        bags.check_topic(topics, cfg.imu_topic, IMU_TYPE, bag)
        stamps, quats = [], []
        for m in bags.iter_messages(bag, [cfg.imu_topic]):  # small messages: all of them
            q = messages.imu_orientation(m.msg)
            if q is None:
                index.imu_no_orientation += 1
            else:
                stamps.append(m.stamp_ns)
                quats.append(q)
        near, _ = match_stamps(img, stamps, round(cfg.imu_max_dt_s * 1e9))
        index.imu = [None if k is None else quats[k] for k in near]
    return index


def check_unique_stamps(
    bag: str | Path, image_ns: list[int], depth_ns: list[int], match: list[int | None]
) -> None:
    """Pairing by header stamp needs each stamp once per topic: an image that shares its stamp
    with another image, or is paired with a depth stamp another depth image also carries, could
    be paired with another frame's depth (a driver that stamps whole seconds, or never sets the
    stamp). Raises ValueError naming how many."""
    img_n, dep_n = Counter(image_ns), Counter(depth_ns)
    shared = sum(
        1
        for t, j in zip(image_ns, match, strict=True)
        if j is not None and (img_n[t] > 1 or dep_n[depth_ns[j]] > 1)
    )
    if shared:
        repeated = sum(n for n in img_n.values() if n > 1)
        repeated_d = sum(n for n in dep_n.values() if n > 1)
        raise ValueError(
            f"{bag}: {shared} paired images share a header stamp with another message of their "
            f"topic ({repeated} images and {repeated_d} depth images carry a repeated stamp), so "
            "pairing image and depth by stamp is ambiguous; the camera driver must stamp each "
            "frame with its own capture time"
            + (
                " (stamped 0 on a simulator's clock: frames sent before /clock came? start the "
                "recording after the simulation)"
                if img_n[0] > 1 or dep_n[0] > 1
                else ""
            )
        )


def match_stamps(
    image_ns: list[int], depth_ns: list[int], tol_ns: int
) -> tuple[list[int | None], list[int | None]]:
    """For each image stamp, the index of the nearest depth (or other) stamp within `tol_ns`
    (else None)."""
    if not depth_ns:
        return [None] * len(image_ns), [None] * len(image_ns)
    order = np.argsort(np.asarray(depth_ns, dtype=np.int64), kind="stable")
    sorted_ns = np.asarray(depth_ns, dtype=np.int64)[order]
    match: list[int | None] = []
    dts: list[int | None] = []
    for t in image_ns:
        k = int(np.searchsorted(sorted_ns, t))
        cands = [c for c in (k - 1, k) if 0 <= c < len(sorted_ns)]
        best = min(cands, key=lambda c: abs(int(sorted_ns[c]) - t))
        dt = int(sorted_ns[best]) - t
        ok = abs(dt) <= tol_ns
        match.append(int(order[best]) if ok else None)
        dts.append(dt if ok else None)
    return match, dts


# ------------------------------------------------------------------------------------------------
# Pass 2: frames with their GT, streamed in recording order with bounded buffering


@dataclass
class Frame:
    index: int
    image: bags.BagMessage
    gt: tuple[np.ndarray, np.ndarray] | str | None  # (depth m, valid), a decode error, or no match
    camera_info: Any | None  # the newest good calibration received before the image
    imu_xyzw: tuple[float, ...] | None = None  # the IMU attitude nearest in stamp, if any
    # without a good calibration: (cause, text) of the newest camera_info ignored, if any
    camera_info_ignored: tuple[str, str] | None = None


def iter_frames(bag: str | Path, cfg: ReplayConfig, index: BagIndex) -> Iterator[Frame]:
    """Each image once, with its matched GT depth; an image waits only until its GT arrives.
    A camera_info the node would ignore (`camera_info_problem`) is ignored here too: frames keep
    the newest good one."""
    needed = Counter(j for j in index.match if j is not None)
    cache: dict[int, tuple[np.ndarray, np.ndarray] | str] = {}
    waiting: dict[int, list[Frame]] = {}
    i = j = 0
    info, ignored = None, None
    topics = [t for t in (cfg.image_topic, cfg.depth_topic, cfg.camera_info_topic) if t]

    def take(msg: Any) -> None:
        nonlocal info, ignored
        problem = camera_info_problem(msg)
        if problem is None:
            info, ignored = msg, None
        else:
            ignored = problem

    def release(frame: Frame) -> Frame:
        jj = index.match[frame.index]
        if jj is not None:
            frame.gt = cache[jj]
            needed[jj] -= 1
            if needed[jj] == 0:
                del cache[jj]
        return frame

    for m in bags.iter_messages(bag, topics):
        if m.topic == cfg.camera_info_topic:
            take(m.msg)
        elif m.topic == cfg.image_topic:
            if i >= index.n_frames:
                if not waiting:
                    return
                continue
            if info is None and (own := late_first_camera_info(index, m.stamp_ns)) is not None:
                take(own)  # its own calibration, recorded just after it (the node waits)
            imu = index.imu[i] if index.imu is not None else None
            frame = Frame(i, m, None, info, imu, None if info is not None else ignored)
            jj = index.match[i]
            i += 1
            if jj is None or jj in cache:
                yield release(frame)
            else:
                waiting.setdefault(jj, []).append(frame)
        else:
            if needed.get(j):
                try:
                    cache[j] = messages.image_to_depth(m.msg)
                except ValueError as exc:
                    cache[j] = f"GT depth not decodable: {exc}"
                for frame in waiting.pop(j, []):
                    yield release(frame)
            j += 1
    assert not waiting, f"frames {sorted(waiting)} never met their GT depth"


def late_first_camera_info(index: BagIndex, stamp_ns: int) -> Any | None:
    """The bag's first camera_info where it carries this image's stamp: the image's own
    calibration, recorded just after it (as drivers publish), which the node waits for; the
    first image has no calibration before it then. None otherwise."""
    first = index.first_camera_info
    return first[1] if first is not None and first[0] == stamp_ns else None


# ------------------------------------------------------------------------------------------------
# Scoring one frame


def sparse_metric_fit(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, cfg: ReplayConfig, index: int
) -> tuple[np.ndarray | None, str, dict[str, float]]:
    """`pred` in metres by a `metric_scale` fit to `cfg.sparse_points` random valid GT pixels
    (a stand-in for projected LiDAR), drawn from `default_rng([seed, frame index])`."""
    rng = np.random.default_rng([cfg.seed, index])
    ys, xs = np.nonzero(valid)
    pick = rng.choice(ys.size, size=min(cfg.sparse_points, ys.size), replace=False)
    sparse = np.full(gt.shape, np.nan, dtype=np.float32)
    sparse[ys[pick], xs[pick]] = gt[ys[pick], xs[pick]]
    min_points = max(2, min(20, cfg.sparse_points))
    fit, reason = fit_metric_scale(pred, sparse, cfg.sparse_fit, min_points=min_points)
    if fit is None:
        return None, reason, {}
    return fit.apply(pred), "ok", {"fit_scale": fit.scale, "fit_shift": fit.shift}


def ground_plane_fit(
    row: dict[str, Any],
    pred: np.ndarray,
    frame: Frame,
    ground: GroundPlaneScale | None,
    cfg: ReplayConfig | None = None,
) -> np.ndarray | None:
    """The metres the node's ground-plane path would publish for this frame (its floor fit
    through the frame's CameraInfo P, the stream's smoother, and with an IMU and a tilt share the
    floor's tilt taken out), the fit recorded in `row["ground_plane"]`; None (with the
    fallback's code and reason there) when it would publish relative depth."""
    if ground is None:
        raise ValueError("the ground_plane protocol needs the run's GroundPlaneScale")
    if frame.camera_info is None:
        code, why = "no_camera_info", "no CameraInfo received before this image"
        if frame.camera_info_ignored is not None:  # as the node, which keeps only good ones
            cause, text = frame.camera_info_ignored
            code, why = (
                f"camera_info_{cause}",
                f"no good CameraInfo yet, the newest ignored: {text}",
            )
        row["ground_plane"] = {"code": code, "scale": None, "reason": why}
        return None
    mismatch = aspect_problem(frame.camera_info, pred.shape)
    if mismatch:  # stretched per axis it would give wrong metres: the node ignores it too
        row["ground_plane"] = {"code": "camera_info_aspect", "scale": None, "reason": mismatch}
        return None
    # P of the prediction's pixels: the CameraInfo's binning and ROI applied, a calibration
    # for another size rescaled, a P of zeros taken from K
    proj = image_projection(frame.camera_info, pred.shape)[1]
    up_3, up, up_reason = None, "prior", ""
    if cfg is not None and cfg.imu_topic:  # as the node's ground_plane.imu
        mount = ground.cfg
        up_3, up = frame_up(frame.imu_xyzw, mount.pitch_deg, mount.roll_deg, cfg.imu_max_dt_s)
    P = projection_p(proj)
    if up_3 is None and cfg is not None and cfg.vertical_lines:  # an IMU in time wins
        try:
            image = messages.image_to_rgb(frame.image.msg)
        except ValueError:
            image = None
        mount = ground.cfg
        prior_3 = expected_up(mount.pitch_deg, mount.roll_deg)
        up_3, up_reason, code = frame_lines_up(image, pred.shape, P, prior_3)
        up = {"ok": "vertical_lines", "horizon": "horizon"}.get(code, f"prior ({code})")
    estimated = up in ("vertical_lines", "horizon")  # the floor must agree; an IMU's need not
    fit, applied = ground.update(np.asarray(pred, dtype=np.float64), P, None, up_3, estimated)
    if fit.up_dropped:
        up, up_reason = "prior (floor_disagrees)", f"prior ({fit.up_dropped})"
    row["ground_plane"] = {
        "up": up,
        "code": fit.code,
        "status": applied.status,
        "scale": applied.scale,
        "frame_scale": fit.scale,
        "inlier_fraction": fit.inlier_fraction,
        "normal_angle_deg": fit.normal_angle_deg,
        "tilt_share": fit.tilt_share,
    }
    if up_reason:  # the vertical lines' own account: how many lines, or why none
        row["ground_plane"]["up_reason"] = up_reason
    if applied.scale is None:
        row["ground_plane"]["reason"] = fit.reason
        return None
    return apply_floor_scale(pred, P, applied.scale, fit)


def score_frame(
    row: dict[str, Any],
    pred: np.ndarray,
    frame: Frame,
    cfg: ReplayConfig,
    ground: GroundPlaneScale | None = None,
) -> np.ndarray | None:
    """Fill `row` with metrics (status `evaluated`), or a status and reason why not.

    Returns the prediction as scored (metres under the metric and ground_plane protocols; None
    where no metric scale exists), which is what `--write-bag` publishes: under ground_plane the
    floor's metres whether or not the frame can be scored, as the node publishes them; where it
    returns None, `pred` itself, the relative depth the node falls back to. `ground` is the run's
    ground-plane state (the ground_plane protocol). Non-finite predicted pixels (the node's NaN
    for invalid output) are left out of scoring and counted in `pred_invalid_px`.
    """
    metric = cfg.protocol in ("metric", "ground_plane")
    metres = None
    if cfg.protocol == "ground_plane":  # every frame, in order: the smoother follows the stream
        metres = ground_plane_fit(row, pred, frame, ground, cfg)
    # what a frame that cannot be scored publishes: the floor's metres need no GT, a sparse fit
    # to GT (metric) does
    unscored = metres if cfg.protocol == "ground_plane" else None if metric else pred
    if frame.gt is None:
        row["status"] = "unmatched" if cfg.depth_topic else "predicted"
        return unscored
    if isinstance(frame.gt, str):
        reject(row, frame.gt)
        return unscored
    gt, valid = frame.gt
    if pred.shape != gt.shape:
        reject(
            row,
            f"size mismatch: image {pred.shape[1]}x{pred.shape[0]} vs GT depth "
            f"{gt.shape[1]}x{gt.shape[0]} (WxH)",
        )
        return unscored
    if cfg.depth_range is not None:  # as eval's readers: GT outside the range is not scored
        lo, hi = cfg.depth_range
        inside = valid & (gt > lo) & (gt <= hi)
        if valid.any() and not inside.any():
            reject(row, f"no valid GT depth inside --depth-range ({lo:g}, {hi:g}] m")
            return unscored
        valid = inside
    finite = np.isfinite(pred)
    if not finite.all():
        row["pred_invalid_px"] = int(np.count_nonzero(valid & ~finite))
        valid = valid & finite
    if not valid.any():
        reject(row, "no pixel with both valid GT depth and a finite prediction")
        return unscored
    if cfg.protocol == "ground_plane":
        if metres is None:
            gp = row["ground_plane"]
            reject(row, f"ground-plane fallback ({gp['code']}): {gp['reason']}")
            return None
        aligned = evaluate(pred, gt, valid, get_protocol("depthart"), cfg.depth_range)
        row["aligned_abs_rel"] = aligned["abs_rel"]
        pred = metres  # finite wherever the relative prediction is
    elif metric:
        pred, reason, fit = sparse_metric_fit(pred, gt, valid, cfg, frame.index)
        row.update(fit)
        if pred is None:
            reject(row, f"metric scale fit failed: {reason}")
            return None
        lost = valid & ~np.isfinite(pred)  # a scale_shift fit's -inf (metres <= 0): counted
        if lost.any():
            row["pred_invalid_px"] = row.get("pred_invalid_px", 0) + int(lost.sum())
        valid = valid & ~lost
    try:
        protocol = get_protocol(cfg.eval_protocol)
        row["metrics"] = evaluate(pred, gt, valid, protocol, cfg.depth_range)
    except ValueError as exc:  # e.g. a metric fit that leaves no positive pixel
        reject(row, f"not scorable: {exc}")
        return pred
    row["status"] = "evaluated"
    return pred


def reject(row: dict[str, Any], reason: str) -> None:
    row["status"], row["reason"] = "rejected", reason


def new_row(index: BagIndex, i: int) -> dict[str, Any]:
    j, dt = index.match[i], index.dt_ns[i]
    return {
        "index": i,
        "stamp_ns": index.image_stamps[i],
        "gt_stamp_ns": None if j is None else index.depth_stamps[j],
        "dt_ms": None if dt is None else dt / 1e6,
        "status": None,
    }


def nearest_offset_s(index: BagIndex) -> float:
    """The smallest |image stamp - depth stamp| of the bag, in seconds (inf without depth)."""
    if not index.depth_stamps or not index.image_stamps:
        return float("inf")
    dep = np.sort(np.asarray(index.depth_stamps, dtype=np.int64))
    img = np.asarray(index.image_stamps, dtype=np.int64)
    k = np.clip(np.searchsorted(dep, img), 1, len(dep) - 1) if len(dep) > 1 else np.zeros_like(img)
    best = np.minimum(np.abs(dep[k] - img), np.abs(dep[np.maximum(k - 1, 0)] - img))
    return float(best.min()) / 1e9


# ------------------------------------------------------------------------------------------------
# Run state shared by both modes; written to disk on every exit path


@dataclass
class ReplayRun:
    mode: str
    bag: str
    cfg: ReplayConfig
    index: BagIndex
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    sample_ids: set[int] = field(default_factory=set)
    ground: GroundPlaneScale | None = None  # the ground_plane protocol's stream state

    def __post_init__(self) -> None:
        if self.cfg.protocol == "ground_plane":
            self.ground = GroundPlaneScale(self.cfg.ground_plane)
        n = self.index.n_frames
        if n and self.cfg.n_samples > 0:
            picks = np.linspace(0, n - 1, min(n, self.cfg.n_samples)).round().astype(int)
            self.sample_ids = set(picks.tolist())

    def keep_sample(self, frame: Frame, rgb: np.ndarray, pred: np.ndarray) -> None:
        if frame.index in self.sample_ids:
            gt = frame.gt if isinstance(frame.gt, tuple) else None
            self.samples.append({"index": frame.index, "rgb": rgb, "pred": pred, "gt": gt})

    def all_rows(self) -> list[dict[str, Any]]:
        """Rows for every frame; frames never reached are `not_played` (live) or absent."""
        return [self.rows[i] for i in sorted(self.rows)]


# ------------------------------------------------------------------------------------------------
# Predictions of a run, and the bag they can be written to


class PredictionStore:
    """Per-frame predictions spilled to .npy files under the output directory (bounded memory),
    in a temp folder named as `fileutil.is_temp_name` recognises: a killed run's is removed when
    its folder is next claimed."""

    def __init__(self, parent: Path, units_known: bool = False) -> None:
        # units_known: each frame is put as metres or, marked `relative`, as relative depth (an
        # offline replay under a metric protocol); a live replay stores the node's outputs as is
        self.units_known = units_known
        self.relative: set[int] = set()  # frames stored as relative depth (no metric scale)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=".predictions.", suffix=TEMP_SUFFIX, dir=parent)
        except OSError as exc:
            raise WriteError(parent, exc) from exc
        self.dir = Path(tmp)

    def _path(self, i: int) -> Path:
        return self.dir / f"{i:08d}.npy"

    def put(self, i: int, depth: np.ndarray, relative: bool = False) -> None:
        """Store frame `i`'s depth; `relative`: the relative prediction where a metric protocol
        found no metric scale (the node's fallback), counted in `relative`."""
        path = self._path(i)
        try:
            path.write_bytes(npy_bytes(np.asarray(depth, dtype=np.float32)))
        except OSError as exc:
            raise WriteError(path, exc) from exc
        if relative:
            self.relative.add(i)
        else:
            self.relative.discard(i)

    def get(self, i: int) -> np.ndarray:
        return np.load(self._path(i))

    def __contains__(self, i: int) -> bool:
        return self._path(i).is_file()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def check_write_bag(
    write_bag: str | Path, index: BagIndex, pred_topic: str, bag: str | Path | None = None
) -> None:
    """Refuse, before any prediction, a --write-bag that cannot be written: an existing target,
    a ROS 1 bag, predictions onto a topic the bag already has (they would mix with it), or a
    topic of a type rosbags cannot describe where the bag stores no type hash (ROS 2 Humble)."""
    if Path(write_bag).exists():
        raise ValueError(f"--write-bag target {write_bag} exists already; not overwriting")
    if not index.ros2:
        raise BagError(
            "--write-bag copies the input topics verbatim and needs a ROS 2 bag; convert the "
            "ROS 1 bag first (rosbags-convert --src in.bag --dst out_dir)"
        )
    clash = [t for t in (pred_topic, f"{pred_topic}/camera_info") if t in index.topics]
    if clash:
        raise ValueError(
            f"--write-bag: the bag already has {clash[0]} (predictions of an earlier replay?); "
            "the new ones would mix with it: give another --pred-topic"
        )
    if bag is not None:
        for topic, (msgtype, msgdef, digest, _) in bags.copy_connections_info(bag).items():
            if not (msgdef and digest) and not bags.known_type(msgtype):
                raise BagError(
                    f"--write-bag: topic {topic} ({msgtype}) has no type hash in the bag (a ROS 2 "
                    "Humble recording?) and is not a standard message, so it cannot be copied"
                )


def write_prediction_bag(
    bag: Path, out_bag: str | Path, cfg: ReplayConfig, index: BagIndex, store: PredictionStore
) -> dict[str, Any]:
    """Copy every topic of `bag` into a new MCAP bag and add the predictions beside them.

    Every topic keeps its recorded QoS profiles (a latched /tf_static or camera_info still
    latches under `ros2 bag play`). `cfg.pred_topic` gets a 32FC1 image per predicted frame with
    the input image's header (stamp and frame id) at its recording time, as the node publishes
    it; `<pred_topic>/camera_info` the camera the node publishes with it under that header: the
    frame's calibration as `iter_frames` pairs it (the newest good one, or the first image's own
    recorded just after it), rescaled to the prediction's size (`messages.depth_camera_info_msg`);
    none where it has another aspect ratio than the prediction, as the node. With
    `store.units_known` the summary's `relative` counts the frames written as relative depth
    because no metric scale existed (the node's fallback).
    """
    conns = bags.copy_connections_info(bag)
    i, info, written, relative = 0, None, 0, 0
    with bags.BagWriter(out_bag, storage="mcap") as out:
        for topic, msgtype, log_ns, raw in bags.iter_raw(bag):
            _, msgdef, digest, qos = conns[topic]
            out.write_raw(topic, msgtype, raw, log_ns, msgdef, digest, qos)
            if topic == cfg.camera_info_topic:  # the node republishes only a good one
                latest = messages.deserialize(raw, CAMERA_INFO_TYPE)
                info = info if camera_info_problem(latest) else latest
            if topic != cfg.image_topic:
                continue
            if i < index.n_frames and i in store:
                stamp, fid = index.image_stamps[i], index.image_frame_ids[i]
                own = late_first_camera_info(index, stamp)
                if info is None and own is not None and not camera_info_problem(own):
                    info = own
                depth = store.get(i)
                msg = messages.image_msg(depth, "32FC1", stamp, fid)
                out.write(cfg.pred_topic, msg, log_ns)
                if info is not None and not aspect_problem(info, depth.shape):
                    ci = messages.depth_camera_info_msg(info, depth.shape, stamp, fid)
                    out.write(f"{cfg.pred_topic}/camera_info", ci, log_ns)
                written += 1
                relative += i in store.relative
            i += 1
    summary = {"path": str(out_bag), "pred_topic": cfg.pred_topic, "predictions": written}
    if store.units_known:  # of them, relative depth: no metric scale existed (the node's fallback)
        summary["relative"] = relative
    return summary
