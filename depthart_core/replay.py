"""Rosbag replay evaluation: a recorded camera stream through the depth model, scored against GT.

Offline mode (deterministic): every image of `image_topic` goes through `Backend.predict`, the same
call the node makes; it is matched to the ground-truth depth with the nearest header stamp within
`max_dt_s` and scored per frame under an evaluation protocol (`depthart_core.evaluation`).
Live mode: the real node runs as a separate process, the bag's images and camera info are played
into it at the recorded rate (restamped with the wall clock at publish time, as a live camera
sends them, unless `restamp=False`), its `depth` outputs (header copied from the input) are
matched back to the frames by stamp for end-to-end latency and drops, and the frames that came
back are scored by the same pass as offline.

Every frame ends in exactly one status, so frames = the sum of the `STATUSES` counts:
    evaluated   prediction scored against matched GT depth
    predicted   prediction made, but no depth topic was given (nothing to score)
    unmatched   no GT depth within the stamp tolerance (listed in the report)
    rejected    undecodable image or GT, size mismatch, no valid GT pixel (reason in the report)
    dropped     live only: published, but no output came back
    not_played  live only: never published (time limit or interruption)

Never imports rclpy: live mode talks ROS through an injected `LiveTransport` (the rclpy one is
`depthart_ros.demo.RclpyTransport`) and starts the node with `subprocess`. Reports and plots are
written by `write_report` (report.json, report.md, metrics_over_time.png, latency_hist.png,
samples.png), also for runs that stop early.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from depthart_core import bags, ros_image
from depthart_core.bags import CAMERA_INFO_TYPE, IMAGE_TYPE, BagError
from depthart_core.checkpoint import file_sha256, resolve_checkpoint
from depthart_core.evaluation.protocols import evaluate, get_protocol
from depthart_core.metric_scale import fit_metric_scale

log = logging.getLogger(__name__)

PROTOCOLS = ("depthart", "affine", "metric")
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
    depth_range: tuple[float, float] | None = None  # GT range the affine/metric protocols clip to
    sparse_points: int = 100  # metric protocol: GT pixels the scale fit sees (a LiDAR stand-in)
    sparse_fit: str = "scale"
    seed: int = 0
    n_samples: int = 4  # rows in samples.png
    plots: bool = True  # the three PNGs beside report.json / report.md
    pred_topic: str = "/depthart/depth"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.sparse_fit not in SPARSE_FITS:
            raise ValueError(f"sparse_fit must be one of {SPARSE_FITS}, got {self.sparse_fit!r}")
        if not self.max_dt_s >= 0:
            raise ValueError(f"max_dt_s must be >= 0 s, got {self.max_dt_s}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.protocol == "metric" and not self.depth_topic:
            raise ValueError("the metric protocol fits the scale to GT depth: give depth_topic")
        if self.protocol == "metric" and self.sparse_points < 1:
            raise ValueError(f"sparse_points must be >= 1, got {self.sparse_points}")
        if self.depth_topic and self.depth_topic == self.image_topic:
            raise ValueError(f"depth topic and image topic are the same: {self.image_topic!r}")


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

    @property
    def n_frames(self) -> int:
        return len(self.image_stamps)


def index_bag(bag: str | Path, cfg: ReplayConfig) -> BagIndex:
    """Validate the topics and match every image to the nearest GT depth stamp."""
    topics = bags.list_topics(bag)
    bags.check_topic(topics, cfg.image_topic, IMAGE_TYPE, bag)
    if cfg.depth_topic:
        bags.check_topic(topics, cfg.depth_topic, IMAGE_TYPE, bag)
    if cfg.camera_info_topic:
        bags.check_topic(topics, cfg.camera_info_topic, CAMERA_INFO_TYPE, bag)
    img, fids, dep = [], [], []
    wanted = [cfg.image_topic] + ([cfg.depth_topic] if cfg.depth_topic else [])
    for m in bags.iter_messages(bag, wanted):
        if m.topic == cfg.image_topic:
            img.append(m.stamp_ns)
            fids.append(m.msg.header.frame_id)
        else:
            dep.append(m.stamp_ns)
    if cfg.max_frames is not None:
        img, fids = img[: cfg.max_frames], fids[: cfg.max_frames]
    match, dts = match_stamps(img, dep, round(cfg.max_dt_s * 1e9))
    return BagIndex(img, fids, dep, match, dts, topics, bags.bag_is_ros2(bag))


def match_stamps(
    image_ns: list[int], depth_ns: list[int], tol_ns: int
) -> tuple[list[int | None], list[int | None]]:
    """For each image stamp, the index of the nearest depth stamp within `tol_ns` (else None)."""
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
    camera_info: Any | None


def iter_frames(bag: str | Path, cfg: ReplayConfig, index: BagIndex) -> Iterator[Frame]:
    """Each image once, with its matched GT depth; an image waits only until its GT arrives."""
    needed = Counter(j for j in index.match if j is not None)
    cache: dict[int, tuple[np.ndarray, np.ndarray] | str] = {}
    waiting: dict[int, list[Frame]] = {}
    i = j = 0
    info = None
    topics = [t for t in (cfg.image_topic, cfg.depth_topic, cfg.camera_info_topic) if t]

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
            info = m.msg
        elif m.topic == cfg.image_topic:
            if i >= index.n_frames:
                if not waiting:
                    return
                continue
            frame, jj = Frame(i, m, None, info), index.match[i]
            i += 1
            if jj is None or jj in cache:
                yield release(frame)
            else:
                waiting.setdefault(jj, []).append(frame)
        else:
            if needed.get(j):
                try:
                    cache[j] = bags.image_to_depth(m.msg)
                except ValueError as exc:
                    cache[j] = f"GT depth not decodable: {exc}"
                for frame in waiting.pop(j, []):
                    yield release(frame)
            j += 1
    assert not waiting, f"frames {sorted(waiting)} never met their GT depth"


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


def score_frame(
    row: dict[str, Any], pred: np.ndarray, frame: Frame, cfg: ReplayConfig
) -> np.ndarray | None:
    """Fill `row` with metrics (status `evaluated`), or a status and reason why not.

    Returns the prediction as scored (metres under the metric protocol; None where no metric fit
    exists), which is what `--write-bag` publishes. Non-finite predicted pixels (the node's NaN
    for invalid output) are left out of scoring and counted in `pred_invalid_px`.
    """
    metric = cfg.protocol == "metric"
    if frame.gt is None:
        row["status"] = "unmatched" if cfg.depth_topic else "predicted"
        return None if metric else pred
    if isinstance(frame.gt, str):
        reject(row, frame.gt)
        return None if metric else pred
    gt, valid = frame.gt
    if pred.shape != gt.shape:
        reject(
            row,
            f"size mismatch: image {pred.shape[1]}x{pred.shape[0]} vs GT depth "
            f"{gt.shape[1]}x{gt.shape[0]} (WxH)",
        )
        return None if metric else pred
    finite = np.isfinite(pred)
    if not finite.all():
        row["pred_invalid_px"] = int(np.count_nonzero(valid & ~finite))
        valid = valid & finite
    if not valid.any():
        reject(row, "no pixel with both valid GT depth and a finite prediction")
        return None if metric else pred
    if metric:
        pred, reason, fit = sparse_metric_fit(pred, gt, valid, cfg, frame.index)
        row.update(fit)
        if pred is None:
            reject(row, f"metric scale fit failed: {reason}")
            return None
        valid = valid & np.isfinite(pred)
    try:
        row["metrics"] = evaluate(pred, gt, valid, get_protocol(cfg.protocol), cfg.depth_range)
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

    def __post_init__(self) -> None:
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


def summarize(run: ReplayRun) -> dict[str, Any]:
    """Counts, aggregate metrics, latency and throughput of a run, as stored in report.json."""
    rows = run.all_rows()
    counts = Counter(r["status"] for r in rows)
    scored = [r["metrics"] for r in rows if r["status"] == "evaluated"]
    aggregate = {}
    if scored:
        aggregate = {k: float(np.mean([m[k] for m in scored])) for k in scored[0]}
    lat = np.array([r["latency_ms"] for r in rows if r.get("latency_ms") is not None])
    latency = {}
    if lat.size:
        latency = {
            "mean": float(lat.mean()),
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
            "n": int(lat.size),
        }
    return {
        "mode": run.mode,
        "status": run.status,
        "bag": run.bag,
        "config": asdict(run.cfg),
        "topics": {t: asdict(s) for t, s in run.index.topics.items()},
        "counts": {"frames": len(rows), **{s: counts.get(s, 0) for s in STATUSES}},
        "frames_in_bag": run.index.n_frames,
        "headline": list(get_protocol(run.cfg.protocol).headline),
        "aggregate": aggregate,
        "latency_ms": latency,
        "unmatched_frames": [
            {"index": r["index"], "stamp_ns": r["stamp_ns"]}
            for r in rows
            if r["status"] == "unmatched"
        ],
        "rejected_frames": [
            {"index": r["index"], "stamp_ns": r["stamp_ns"], "reason": r["reason"]}
            for r in rows
            if r["status"] == "rejected"
        ],
        **run.meta,
        "rows": rows,
    }


def format_summary(report: dict[str, Any], out_dir: str | Path | None = None) -> str:
    """A few lines for the terminal: frames, throughput, latency, headline metrics, outputs."""
    c = report["counts"]
    parts = [f"{k} {c[k]}" for k in STATUSES if c.get(k)]
    lines = [f"{report['mode']} replay of {report['bag']} ({report['status']})"]
    lines.append(f"  frames {c['frames']}: " + (", ".join(parts) or "none processed"))
    if report.get("fps"):
        lines.append(f"  throughput {report['fps']:.2f} frames/s")
    lat = report.get("latency_ms") or {}
    if lat:
        what = "end-to-end" if report["mode"] == "live" else "predict"
        lines.append(
            f"  {what} latency ms: mean {lat['mean']:.1f}, p50 {lat['p50']:.1f}, "
            f"p90 {lat['p90']:.1f}, max {lat['max']:.1f}"
        )
    agg = report.get("aggregate") or {}
    if agg:
        keys = [k for k in ("abs_rel", *report["headline"]) if k in agg]
        vals = ", ".join(f"{k} {agg[k]:.4f}" for k in dict.fromkeys(keys))
        lines.append(f"  {report['config']['protocol']} protocol: {vals}")
    if out_dir is not None:
        lines.append(f"  report and pictures in {Path(out_dir).resolve()}/")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Offline mode


class PredictionStore:
    """Per-frame predictions spilled to .npy files under the output directory (bounded memory)."""

    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=".predictions-", dir=parent))

    def _path(self, i: int) -> Path:
        return self.dir / f"{i:08d}.npy"

    def put(self, i: int, depth: np.ndarray) -> None:
        np.save(self._path(i), np.asarray(depth, dtype=np.float32))

    def get(self, i: int) -> np.ndarray:
        return np.load(self._path(i))

    def __contains__(self, i: int) -> bool:
        return self._path(i).is_file()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def describe_backend(backend: Any) -> dict[str, Any]:
    info = getattr(backend, "info", {}) or {}
    return {
        "name": getattr(backend, "name", type(backend).__name__),
        "checkpoint": info.get("path"),
        "checkpoint_sha256": info.get("sha256"),
        "image_size": getattr(backend, "image_size", None),
    }


def replay_offline(
    bag: str | Path,
    out_dir: str | Path,
    cfg: ReplayConfig,
    backend: Any,
    write_bag: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Predict every image with `backend.predict`, score it, write the report; return it.

    The report (with whatever frames were done) is written on every exit path, including
    KeyboardInterrupt and bag errors met half-way; the exception is then re-raised.
    """
    bag, out = Path(bag), Path(out_dir)
    index = index_bag(bag, cfg)
    if write_bag is not None:
        check_write_bag(write_bag, index)
    run = ReplayRun("offline", str(bag), cfg, index)
    run.meta["backend"] = describe_backend(backend)
    store = PredictionStore(out) if write_bag is not None else None
    t_start = time.perf_counter()
    try:
        frames = iter_frames(bag, cfg, index)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, total=index.n_frames, unit="frame")
        for frame in frames:
            _offline_frame(run, frame, backend, store)
        if store is not None:
            run.meta["write_bag"] = write_prediction_bag(bag, write_bag, cfg, index, store)
        run.status = "complete"
    except KeyboardInterrupt:
        run.status = "interrupted"
        raise
    except Exception as exc:
        run.status = f"error: {exc}"
        raise
    finally:
        wall = time.perf_counter() - t_start
        lat = [r["latency_ms"] for r in run.rows.values() if r.get("latency_ms") is not None]
        run.meta.update(wall_s=wall, fps=len(lat) / (sum(lat) / 1e3) if lat else None)
        if store is not None:
            store.close()
        report = write_report(run, out)
    return report


def _offline_frame(
    run: ReplayRun, frame: Frame, backend: Any, store: PredictionStore | None
) -> None:
    """Predict and score one frame; its row joins the report only once it is complete."""
    row = new_row(run.index, frame.index)
    try:
        rgb = bags.image_to_rgb(frame.image.msg)
    except ValueError as exc:
        reject(row, f"image not decodable: {exc}")
        run.rows[frame.index] = row
        return
    if not run.meta.get("warmed_up"):  # first-call costs (allocation, lazy init) stay untimed
        backend.predict(rgb)
        run.meta["warmed_up"] = True
    t0 = time.perf_counter()
    pred = backend.predict(rgb)
    row["latency_ms"] = (time.perf_counter() - t0) * 1e3
    scored = score_frame(row, pred, frame, run.cfg)
    run.keep_sample(frame, rgb, pred if scored is None else scored)
    if store is not None and scored is not None:
        store.put(frame.index, scored)
    run.rows[frame.index] = row


def check_write_bag(write_bag: str | Path, index: BagIndex) -> None:
    if Path(write_bag).exists():
        raise ValueError(f"--write-bag target {write_bag} exists already; not overwriting")
    if not index.ros2:
        raise BagError(
            "--write-bag copies the input topics verbatim and needs a ROS 2 bag; convert the "
            "ROS 1 bag first (rosbags-convert --src in.bag --dst out_dir)"
        )


def write_prediction_bag(
    bag: Path, out_bag: str | Path, cfg: ReplayConfig, index: BagIndex, store: PredictionStore
) -> dict[str, Any]:
    """Copy every topic of `bag` into a new MCAP bag and add the predictions beside them.

    `cfg.pred_topic` gets a 32FC1 image per predicted frame with the input image's header (stamp
    and frame id) at its recording time, as the node publishes it; `<pred_topic>/camera_info`
    repeats the latest camera info under that header.
    """
    conns = bags.copy_connections_info(bag)
    i, info, written = 0, None, 0
    with bags.BagWriter(out_bag, storage="mcap") as out:
        for topic, msgtype, log_ns, raw in bags.iter_raw(bag):
            _, msgdef, digest = conns[topic]
            out.write_raw(topic, msgtype, raw, log_ns, msgdef, digest)
            if topic == cfg.camera_info_topic:
                info = bags.deserialize(raw, CAMERA_INFO_TYPE)
            if topic != cfg.image_topic:
                continue
            if i < index.n_frames and i in store:
                stamp, fid = index.image_stamps[i], index.image_frame_ids[i]
                msg = bags.image_msg(store.get(i), "32FC1", stamp, fid)
                out.write(cfg.pred_topic, msg, log_ns)
                if info is not None:
                    ci = bags.with_stamp(info, CAMERA_INFO_TYPE, stamp)
                    out.write_raw(f"{cfg.pred_topic}/camera_info", CAMERA_INFO_TYPE, ci, log_ns)
                written += 1
            i += 1
    return {"path": str(out_bag), "pred_topic": cfg.pred_topic, "predictions": written}


# ------------------------------------------------------------------------------------------------
# Live mode


@dataclass(frozen=True)
class LiveConfig:
    """How the node is started and fed. `node_cmd` replaces `python -m depthart_ros.node`."""

    checkpoint: str | None = None
    backend: str = "torch"  # the node's `backend` parameter
    rate: float = 1.0  # multiple of the recorded rate
    domain_id: int | None = None  # None: $DEPTHART_REPLAY_DOMAIN_ID, else random in [101, 199]
    node_cmd: tuple[str, ...] = ()
    node_args: tuple[str, ...] = ()  # extra --ros-args items, e.g. ("-p", "letterbox:=true")
    startup_timeout_s: float = 60.0  # node start, model load and the first (warm-up) output
    drain_timeout_s: float = 5.0  # after the last frame, wait this long for outstanding outputs
    time_limit_s: float = 600.0  # whole run, startup included
    restamp: bool = True  # wall-clock stamps at publish time, as a live camera would send

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 (a multiple of the recorded rate), got {self.rate}")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise ValueError(f"ROS domain id must be in [0, 232], got {self.domain_id}")
        for name in ("startup_timeout_s", "drain_timeout_s", "time_limit_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 s, got {getattr(self, name)}")


class LiveTransport(Protocol):
    """The ROS side of live replay (rclpy in `depthart_ros.demo.RclpyTransport`)."""

    def open(
        self, domain_id: int, topics: dict[str, str], on_output: Callable[[bytes, float], None]
    ) -> None:
        """Join `domain_id`; publishers for topics["image"] (and ["camera_info"] if given), a
        subscription to topics["output"] calling `on_output(cdr_bytes, time.monotonic())`."""

    def ready(self) -> bool:
        """True once the node subscribes to the images and publishes the output topic."""

    def publish(self, key: str, raw: bytes) -> None:
        """Publish CDR bytes on topics[key] ("image" or "camera_info")."""

    def diagnostics(self) -> list[dict[str, Any]]:
        """The node's latest /diagnostics statuses as plain dicts."""

    def close(self) -> None: ...


def pick_domain_id(requested: int | None = None) -> int:
    if requested is not None:
        return requested
    env = os.environ.get("DEPTHART_REPLAY_DOMAIN_ID")
    if env:
        return int(env)
    return random.SystemRandom().randint(101, 199)


def ros_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS process of the replay: its own domain, loopback discovery, and
    Fast DDS's LARGE_DATA transports (large images are lost over default UDP best effort)."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_command(cfg: ReplayConfig, live: LiveConfig, checkpoint: Path) -> list[str]:
    """The node with its topics remapped onto the bag's and its output onto `cfg.pred_topic`."""
    cmd = list(live.node_cmd) or [sys.executable, "-m", "depthart_ros.node"]
    args = ["--ros-args", "-p", f"checkpoint:={checkpoint}", "-p", f"backend:={live.backend}"]
    args += ["-r", f"image:={cfg.image_topic}"]
    if cfg.camera_info_topic:
        args += ["-r", f"camera_info:={cfg.camera_info_topic}"]
    args += ["-r", f"depth:={cfg.pred_topic}"]
    args += ["-r", f"depth/camera_info:={cfg.pred_topic}/camera_info"]
    return cmd + args + list(live.node_args)


def start_process(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start `cmd` in its own session (so it and its children can be signalled as a group)."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> int | None:
    """SIGINT, then SIGTERM, then SIGKILL to the process group we started; returns the code."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    try:  # children the node left behind in its group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.poll()


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


class LiveSession:
    """One live run: the node process, the transport, the playback clock, and the bookkeeping
    that maps each output (by its header stamp) back to the frame that was published."""

    def __init__(
        self,
        bag: Path,
        out: Path,
        cfg: ReplayConfig,
        live: LiveConfig,
        index: BagIndex,
        transport: LiveTransport,
        store: PredictionStore,
        checkpoint: Path,
    ) -> None:
        self.bag, self.cfg, self.live, self.index = bag, cfg, live, index
        self.transport, self.store = transport, store
        self.domain_id = pick_domain_id(live.domain_id)
        self.cmd = node_command(cfg, live, checkpoint)
        self.log_path = out / "node.log"
        self.proc: subprocess.Popen | None = None
        self.outputs: queue.Queue[tuple[bytes, float]] = queue.Queue()
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.pending: dict[int, list[int]] = {}  # stamp -> frames published, not yet returned
        self.bad_outputs: dict[int, str] = {}
        self.warm_stamps: set[int] = set()
        self.warm_back = self.unexpected = 0
        self._last_stamp = 0
        self.truncated = False
        self.t_start = time.monotonic()
        self.deadline = self.t_start + live.time_limit_s
        self.last_activity = self.t_start
        self.exit_code: int | None = None

    # -- process and transport
    def start(self) -> None:
        env = ros_env(self.domain_id)
        for key in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
            os.environ.setdefault(key, env[key])  # this process's participant needs them too
        log.info("starting node (ROS_DOMAIN_ID=%d): %s", self.domain_id, " ".join(self.cmd))
        self.proc = start_process(self.cmd, env, self.log_path)
        topics = {"image": self.cfg.image_topic, "output": self.cfg.pred_topic}
        if self.cfg.camera_info_topic:
            topics["camera_info"] = self.cfg.camera_info_topic
        self.transport.open(self.domain_id, topics, self._on_output)
        limit = min(self.deadline, self.t_start + self.live.startup_timeout_s)
        while not self.transport.ready():
            if time.monotonic() >= limit:
                raise RuntimeError(
                    f"node did not subscribe to {self.cfg.image_topic} and publish "
                    f"{self.cfg.pred_topic} within {self.live.startup_timeout_s:.0f} s; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            self.pump(time.monotonic() + 0.1)

    def close(self) -> None:
        try:
            self.transport.close()
        finally:
            if self.proc is not None:
                self.exit_code = stop_process(self.proc)

    def _on_output(self, raw: bytes, t: float) -> None:
        self.outputs.put((raw, t))

    def _check_node(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"node exited with code {self.proc.returncode} during the replay; last lines of "
                f"{self.log_path}:\n{log_tail(self.log_path)}"
            )

    def pump(self, until: float) -> None:
        """Handle outputs as they arrive until monotonic time `until`, then any still queued."""
        while True:
            remaining = until - time.monotonic()
            try:
                if remaining > 0:
                    raw, t = self.outputs.get(timeout=min(remaining, 0.25))
                else:
                    raw, t = self.outputs.get_nowait()
            except queue.Empty:
                if remaining <= 0:
                    return
                self._check_node()
                continue
            self._handle(raw, t)

    def _handle(self, raw: bytes, t: float) -> None:
        msg = bags.deserialize(raw, IMAGE_TYPE)
        stamp = bags.stamp_to_ns(msg.header.stamp)
        if stamp in self.warm_stamps:
            self.warm_back += 1
            return
        frames = self.pending.get(stamp)
        if not frames:
            self.unexpected += 1
            return
        i = frames.pop(0)
        self.received[i] = t
        self.last_activity = t
        try:
            self.store.put(i, ros_image.depth_image_to_metres(msg))
        except ValueError as exc:
            self.bad_outputs[i] = f"node output not decodable: {exc}"

    # -- playback
    def _next_stamp(self) -> int:
        """Wall-clock stamp for a restamped message, strictly increasing."""
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return self._last_stamp

    def _cdr(self, m: bags.BagMessage, stamp_ns: int) -> bytes:
        """ROS 2 CDR of `m` carrying `stamp_ns` (the recorded bytes when nothing changes)."""
        if m.ros2 and bags.stamp_to_ns(m.msg.header.stamp) == stamp_ns:
            return m.raw
        return bags.with_stamp(m.msg, m.msgtype, stamp_ns)

    def _first_frame(self) -> tuple[bags.BagMessage, bags.BagMessage | None]:
        first_img = first_info = None
        topics = [t for t in (self.cfg.image_topic, self.cfg.camera_info_topic) if t]
        for m in bags.iter_messages(self.bag, topics):
            if m.topic == self.cfg.camera_info_topic and first_info is None:
                first_info = m
            elif m.topic == self.cfg.image_topic and first_img is None:
                first_img = m
            if first_img is not None and (first_info is not None or len(topics) == 1):
                break
        return first_img, first_info

    def warmup(self) -> None:
        """Feed the first frame, once a second, until an output comes back, so that model loading
        and first-call costs stay out of the measured frames. Warm-up stamps are wall-clock
        (restamping) or 1, 2, ... ns, which no recording uses."""
        first_img, first_info = self._first_frame()
        limit = min(self.deadline, self.t_start + self.live.startup_timeout_s)
        next_send = time.monotonic()
        while self.warm_back == 0:
            now = time.monotonic()
            if now >= limit:
                raise RuntimeError(
                    f"no output on {self.cfg.pred_topic} within {self.live.startup_timeout_s:.0f}"
                    f" s of starting the node; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            if now >= next_send:
                stamp = self._next_stamp() if self.live.restamp else len(self.warm_stamps) + 1
                self.warm_stamps.add(stamp)
                if first_info is not None:
                    self.transport.publish("camera_info", self._cdr(first_info, stamp))
                self.transport.publish("image", self._cdr(first_img, stamp))
                next_send = now + 1.0
            self.pump(min(next_send, limit))
        settle = min(self.deadline, time.monotonic() + 2.0)
        while self.warm_back < len(self.warm_stamps) and time.monotonic() < settle:
            self.pump(min(settle, time.monotonic() + 0.1))

    def play(self) -> None:
        """Publish camera info and images at the recorded rate times `live.rate`."""
        topics = [t for t in (self.cfg.image_topic, self.cfg.camera_info_topic) if t]
        t0 = log0 = None
        i = 0
        for m in bags.iter_messages(self.bag, topics):
            is_image = m.topic == self.cfg.image_topic
            if is_image and i >= self.index.n_frames:
                break
            if t0 is None:
                t0, log0 = time.monotonic(), m.log_ns
            target = t0 + (m.log_ns - log0) / 1e9 / self.live.rate
            if target > self.deadline - self.live.drain_timeout_s:
                self.truncated = True
                log.warning("time limit reached: %d of %d frames played", i, self.index.n_frames)
                break
            self.pump(target)
            stamp = self._next_stamp() if self.live.restamp else m.stamp_ns
            raw = self._cdr(m, stamp)
            if not is_image:
                self.transport.publish("camera_info", raw)
                continue
            t_pub = time.monotonic()
            self.transport.publish("image", raw)
            self.pending.setdefault(stamp, []).append(i)
            self.sent[i] = self.last_activity = t_pub
            i += 1

    def drain(self) -> None:
        """Wait for outstanding outputs until none has arrived for `drain_timeout_s`."""
        while len(self.received) < len(self.sent):
            limit = min(self.deadline, self.last_activity + self.live.drain_timeout_s)
            if time.monotonic() >= limit:
                return
            self.pump(min(limit, time.monotonic() + 0.1))

    def stats(self) -> dict[str, Any]:
        returned = len(self.received)
        span = (max(self.received.values()) - min(self.sent.values())) if returned else 0.0
        try:
            diagnostics = self.transport.diagnostics()
        except Exception as exc:  # diagnostics are informative only
            diagnostics = [{"error": str(exc)}]
        return {
            "published": len(self.sent),
            "returned": returned,
            "dropped": len(self.sent) - returned,
            "warmup_published": len(self.warm_stamps),
            "warmup_returned": self.warm_back,
            "unexpected_outputs": self.unexpected,
            "truncated_by_time_limit": self.truncated,
            "rate": self.live.rate,
            "domain_id": self.domain_id,
            "node_cmd": self.cmd,
            "node_log": str(self.log_path),
            "node_exit_code": self.exit_code,
            "node_diagnostics": diagnostics,
            "fps": returned / span if span > 0 else None,
        }


def replay_live(
    bag: str | Path,
    out_dir: str | Path,
    cfg: ReplayConfig,
    live: LiveConfig,
    transport: LiveTransport,
    write_bag: str | Path | None = None,
) -> dict[str, Any]:
    """Play the bag into the real node, then score the outputs that came back; return the report.

    The node process and the transport are closed on every exit path; the report is written also
    when the run fails or is interrupted, and the exception is then re-raised. `write_bag` gets
    the input topics plus the node's outputs (frames that came back).
    """
    bag, out = Path(bag), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_checkpoint(live.checkpoint)
    index = index_bag(bag, cfg)
    if write_bag is not None:
        check_write_bag(write_bag, index)
    run = ReplayRun("live", str(bag), cfg, index)
    run.meta["backend"] = {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
    }
    store = PredictionStore(out)
    session = LiveSession(bag, out, cfg, live, index, transport, store, checkpoint)
    error: BaseException | None = None
    try:
        try:
            session.start()
            session.warmup()
            session.play()
            session.drain()
        except BaseException as exc:  # KeyboardInterrupt too: score what came back, then re-raise
            error = exc
        finally:
            session.close()
        run.meta["live"] = session.stats()
        run.meta["fps"] = run.meta["live"]["fps"]
        run.meta["wall_s"] = time.monotonic() - session.t_start
        if session.sent:  # nothing played (e.g. the node never started): all rows are filled below
            _live_evaluate(run, session)
        if write_bag is not None:
            run.meta["write_bag"] = write_prediction_bag(bag, write_bag, cfg, index, store)
    except BaseException as exc:
        error = error or exc
    finally:
        _fill_live_rows(run, session)
        run.status = _status(error)
        store.close()
        report = write_report(run, out)
    if error is not None:
        raise error
    return report


def _status(error: BaseException | None) -> str:
    if error is None:
        return "complete"
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return f"error: {error}"


def _live_row(run: ReplayRun, session: LiveSession, i: int) -> dict[str, Any]:
    row = new_row(run.index, i)
    if i not in session.sent:
        row["status"] = "not_played"
    elif i not in session.received:
        row["status"] = "dropped"
    else:
        row["latency_ms"] = (session.received[i] - session.sent[i]) * 1e3
        if i in session.bad_outputs:
            reject(row, session.bad_outputs[i])
    run.rows[i] = row
    return row


def _live_evaluate(run: ReplayRun, session: LiveSession) -> None:
    for frame in iter_frames(session.bag, run.cfg, run.index):
        row = _live_row(run, session, frame.index)
        if row["status"] is not None:
            continue
        pred = session.store.get(frame.index)
        scored = score_frame(row, pred, frame, run.cfg)
        if frame.index in run.sample_ids:
            try:
                rgb = bags.image_to_rgb(frame.image.msg)
            except ValueError:
                continue
            run.keep_sample(frame, rgb, pred if scored is None else scored)


def _fill_live_rows(run: ReplayRun, session: LiveSession) -> None:
    """Rows for frames the scoring pass never reached (it failed or was interrupted)."""
    for i in range(run.index.n_frames):
        if i not in run.rows:
            row = _live_row(run, session, i)
            if row["status"] is None:
                row["status"], row["reason"] = "rejected", "not scored: the run stopped early"


# ------------------------------------------------------------------------------------------------
# Report: report.json, report.md and three pictures


def write_report(run: ReplayRun, out: Path) -> dict[str, Any]:
    """Write every report file for `run` (complete or partial) under `out`; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    report = summarize(run)
    pictures = {
        "metrics_over_time": ("metrics_over_time.png", plot_metrics_over_time),
        "latency_hist": ("latency_hist.png", plot_latency_hist),
        "samples": ("samples.png", plot_samples),
    }
    report["pictures"] = {}
    if run.cfg.plots:
        for key, (name, plot) in pictures.items():
            try:
                if plot(run, report, out / name):
                    report["pictures"][key] = name
            except Exception as exc:  # a failed picture must not cost the report
                log.warning("could not draw %s: %s", name, exc)
                report.setdefault("picture_errors", {})[key] = str(exc)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    (out / "report.md").write_text(markdown_report(report))
    return report


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in report.json")


def markdown_report(report: dict[str, Any]) -> str:
    cfg, c = report["config"], report["counts"]
    lines = [
        f"# DepthART {report['mode']} replay: {Path(report['bag']).name}",
        "",
        f"- status: **{report['status']}**",
        f"- bag: `{report['bag']}`",
        f"- topics: image `{cfg['image_topic']}`, GT depth `{cfg['depth_topic']}`, "
        f"camera info `{cfg['camera_info_topic']}`",
        f"- protocol: `{cfg['protocol']}`, stamp tolerance {cfg['max_dt_s'] * 1e3:g} ms",
        f"- checkpoint: `{(report.get('backend') or {}).get('checkpoint')}`",
        "",
        "## Frames",
        "",
        "| " + " | ".join(["frames", *STATUSES]) + " |",
        "|" + "---|" * (len(STATUSES) + 1),
        "| " + " | ".join(str(c.get(k, 0)) for k in ["frames", *STATUSES]) + " |",
        "",
    ]
    if report["aggregate"]:
        n = c["evaluated"]
        lines += [f"## Metrics (mean over {n} frames)", "", "| metric | value |", "|---|---|"]
        head = report["headline"]
        for k in [*head, *(k for k in report["aggregate"] if k not in head)]:
            lines.append(f"| {k} | {report['aggregate'][k]:.4f} |")
        lines.append("")
    lat = report["latency_ms"]
    if lat:
        what = "end-to-end (publish -> output received)" if report["mode"] == "live" else "predict"
        lines += [f"## Latency, {what}", ""]
        stats = ("mean", "p50", "p90", "p99", "max")
        lines.append(", ".join(f"{k} {lat[k]:.1f} ms" for k in stats))
        if report.get("fps"):
            lines.append(f"\nthroughput: {report['fps']:.2f} frames/s")
        lines.append("")
    if report.get("live"):
        lv = report["live"]
        keys = ("published", "returned", "dropped", "warmup_published", "unexpected_outputs")
        lines += ["## Live", "", ", ".join(f"{k} {lv[k]}" for k in keys)]
        lines += [f"\nnode: `{' '.join(lv['node_cmd'])}` (log `{lv['node_log']}`)", ""]
    for key, title in (("unmatched_frames", "Unmatched"), ("rejected_frames", "Rejected")):
        items = report[key]
        if items:
            lines += [f"## {title} frames ({len(items)})", ""]
            for it in items[:50]:
                lines.append(
                    f"- frame {it['index']} (stamp {it['stamp_ns']})"
                    + (f": {it['reason']}" if "reason" in it else "")
                )
            lines += ["- ..." if len(items) > 50 else "", ""]
    for name in report.get("pictures", {}).values():
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics_over_time(run: ReplayRun, report: dict[str, Any], path: Path) -> bool:
    rows = report["rows"]
    if not rows:
        return False
    plt = _pyplot()
    t0 = rows[0]["stamp_ns"]
    t = np.array([(r["stamp_ns"] - t0) / 1e9 for r in rows])
    keys = [k for k in dict.fromkeys(["abs_rel", *report["headline"]]) if k in report["aggregate"]]
    panels = [*keys, "latency_ms"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.9 * len(panels) + 0.6), sharex=True)
    for ax, key in zip(np.atleast_1d(axes), panels, strict=True):
        if key == "latency_ms":
            y = np.array([r.get("latency_ms", np.nan) or np.nan for r in rows], dtype=float)
        else:
            y = np.array([(r.get("metrics") or {}).get(key, np.nan) for r in rows], dtype=float)
        ax.plot(t, y, ".-", ms=3, lw=0.8)
        missing = [r["status"] != "evaluated" for r in rows] if key != "latency_ms" else []
        for tt in t[np.array(missing, dtype=bool)] if missing else []:
            ax.axvline(tt, color="0.85", lw=0.8, zorder=0)
        ax.set_ylabel(key.replace("_ms", " [ms]"))
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[-1].set_xlabel("time since first frame [s] (grey: frame not scored)")
    fig.suptitle(f"{report['mode']} replay, protocol {report['config']['protocol']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_latency_hist(run: ReplayRun, report: dict[str, Any], path: Path) -> bool:
    lat = np.array([r["latency_ms"] for r in report["rows"] if r.get("latency_ms") is not None])
    if not lat.size:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=min(40, max(5, lat.size // 2)), color="tab:blue", alpha=0.8)
    for q, style in ((50, "-"), (90, "--"), (99, ":")):
        v = float(np.percentile(lat, q))
        ax.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
    what = "end-to-end latency" if report["mode"] == "live" else "predict latency"
    ax.set_xlabel(f"{what} [ms]")
    ax.set_ylabel("frames")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_samples(run: ReplayRun, report: dict[str, Any], path: Path) -> bool:
    samples = sorted(run.samples, key=lambda s: s["index"])
    if not samples:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(len(samples), 3, figsize=(9, 2.6 * len(samples)), squeeze=False)
    for row_axes, s in zip(axes, samples, strict=True):
        gt = None if s["gt"] is None else np.where(s["gt"][1], s["gt"][0], np.nan)
        panels = (("RGB", s["rgb"]), ("GT depth [m]", gt), ("prediction", s["pred"]))
        for ax, (title, img) in zip(row_axes, panels, strict=True):
            ax.set_axis_off()
            ax.set_title(f"{title} (frame {s['index']})" if title == "RGB" else title, fontsize=9)
            if img is None:
                ax.text(0.5, 0.5, "no GT", ha="center", va="center", transform=ax.transAxes)
            elif img.ndim == 3:
                ax.imshow(img)
            else:
                finite = img[np.isfinite(img)]
                lo, hi = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
                im = ax.imshow(img, cmap="turbo_r", vmin=lo, vmax=max(hi, lo + 1e-6))
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
