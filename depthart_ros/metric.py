"""Metres for `depthart_node`: the relative depth scaled by a metric source, or left relative with
the reason. Free of rclpy; the node feeds it messages and publishes what it returns.

Two sources, each switched on by a start-up parameter:
- `sparse_depth`: each frame is fitted to the sparse metric cue nearest in stamp
  (`depthart_core.metric_scale`);
- `ground_plane`: the floor is fitted in the frame's own depth, back-projected through its
  calibration, and scale = camera height / the plane's distance, smoothed over frames
  (`depthart_core.ground_plane`). With `ground_plane.imu` the up of each frame comes from the
  `imu` message nearest in stamp (its attitude, through the camera's mount pitch and roll)
  instead of the fixed mount prior; without one in time the prior is used and diagnostics say so.
  With `ground_plane.vertical_lines` (camera only) the up comes from the image's own vertical
  lines (`depthart_core.vertical_lines`), or where they give none from the horizon's vanishing
  points, where no IMU message is in time; where neither gives one, the prior, and diagnostics
  say why (`vertical_lines_<code>` counts each frame's outcome).
  With an IMU, `ground_plane.tilt` also takes that share of the fitted floor's tilt from the
  IMU's up out of the depth (`depthart_core.ground_plane.apply_floor_scale`), not only its scale.

With both on, a frame with a usable sparse fit takes it (a sensor measures this very frame; the
floor only gives a scale, through the camera height's accuracy), and the ground plane covers the
frames without one. Whatever happens, `state` describes the frame just published: its units, the
source, the scale and shift actually applied (`none` while relative, never a stale fit), and why
it fell back.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import numpy as np

from depthart_core.ground_plane import (
    GroundFit,
    GroundPlaneConfig,
    GroundPlaneScale,
    apply_floor_scale,
    expected_up,
    frame_up,
)
from depthart_core.metric_scale import ScaleFit, StampMatcher, fit_metric_scale, resample_sparse
from depthart_core.rosio import image as ros_image
from depthart_core.rosio.messages import depth_to_metres
from depthart_core.vertical_lines import frame_lines_up

GROUND_PARAMS = (  # node parameter -> GroundPlaneConfig field
    ("ground_plane.camera_height_m", "camera_height_m"),
    ("ground_plane.pitch_deg", "pitch_deg"),
    ("ground_plane.roll_deg", "roll_deg"),
    ("ground_plane.max_normal_angle_deg", "max_normal_angle_deg"),
    ("ground_plane.floor_region", "floor_region"),
    ("ground_plane.min_inlier_fraction", "min_inlier_fraction"),
    ("ground_plane.normal", "normal"),
    ("ground_plane.window", "window"),
    ("ground_plane.tilt", "tilt"),
    ("ground_plane.lines_agree_deg", "lines_agree_deg"),
)


def ground_config(cfg: dict[str, Any]) -> GroundPlaneConfig:
    """The GroundPlaneConfig the node parameters describe (ValueError naming a bad value)."""
    return GroundPlaneConfig(**{field: cfg[name] for name, field in GROUND_PARAMS})


KEPT_SPAN_S = 2.0  # seconds of cue and IMU stamps kept behind the newest
# frames further apart in stamp than this, either way, are a scene cut for the floor's smoother:
# back (a looped bag, a seek, a simulator reset) or forward (a camera paused or restarted, a
# forward seek); its memory would be a stale scene's. Forward, a node that runs slower than
# this (max_rate_hz below 0.5, a slow CPU) cuts at FLOOR_GAP_INTERVALS times its median step.
FLOOR_GAP_S = KEPT_SPAN_S
FLOOR_GAP_INTERVALS = 4
CUES_KEPT = 32  # depth images (a 1280x720 16UC1 cue is 1.8 MB): 1 s of a 30 Hz sensor
IMUS_KEPT = 4000  # 2 s of a 2 kHz IMU


# the reason for a frame whose image is stamped 0 (a driver that never stamps): the cue and the
# IMU pair by stamp, so it gets neither, counted as `<source>_image_unstamped`
UNSTAMPED_IMAGE = "image stamped 0: {what} cannot be paired by stamp"


def _dropped(what: str, matcher: StampMatcher) -> str:
    return (
        f"the {what} of this stamp was already dropped (the frame came more than "
        f"{matcher.span_s:g} s or {matcher.maxlen} messages after it)"
    )


class MetricScaler:
    """The node's metric sources, the per-frame scale and its diagnostics."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.sparse_on = bool(cfg["sparse_depth.enabled"])
        self.ground_on = bool(cfg["ground_plane.enabled"])
        # each frame looks its cue and IMU up after its inference: kept by time, not count (a
        # count of a fast IMU lasts less than a slow frame); the counts bound the memory
        self.cues = StampMatcher(maxlen=CUES_KEPT, span_s=KEPT_SPAN_S)
        self.imu_on = self.ground_on and bool(cfg["ground_plane.imu"])
        self.imus = StampMatcher(maxlen=IMUS_KEPT, span_s=KEPT_SPAN_S)
        self.lines_on = self.ground_on and bool(cfg.get("ground_plane.vertical_lines", False))
        self.lines_counts: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # sparse cues
        self.imu_counts: Counter[str] = Counter()
        self.ground = GroundPlaneScale(ground_config(cfg)) if self.ground_on else None
        self._ground_stamp_ns: int | None = None  # the stamp of the last frame the floor saw
        self._ground_steps_ns: deque[int] = deque(maxlen=5)  # its last forward steps in stamp
        self.plane: dict[str, Any] = {}
        self.state: dict[str, Any] = {
            "units": "relative",
            "source": "none",
            "scale": "none",
            "shift": "none",
            "mode": "none",
            "fits": 0,
            "fallbacks": 0,
            "reason": "no frame yet",
            "nonpositive_px": 0,  # the last frame's pixels a fit put at or behind the camera
        }

    @property
    def enabled(self) -> bool:
        return self.sparse_on or self.ground_on

    @property
    def paired_by_stamp(self) -> tuple[str, ...]:
        """The sources a frame looks up by its stamp (`sparse_depth`, `imu`); empty for none."""
        return ("sparse_depth",) * self.sparse_on + ("imu",) * self.imu_on

    def reconfigure(self, cfg: dict[str, Any]) -> None:
        """New ground-plane parameters (already validated): a changed camera height or prior
        makes the old scales meaningless, so the smoother starts over."""
        if self.ground is not None:
            self.ground = GroundPlaneScale(ground_config(cfg))

    def close(self) -> None:
        """End a wait for a cue now (node shutdown)."""
        self.cues.close()

    def add_cue(self, stamp_ns: int, msg: Any) -> bool:
        """One sparse cue; False for one stamped 0 (counted `unstamped`): it pairs with no frame,
        and among stamped ones it would read as the clock going back and empty the buffer."""
        if stamp_ns == 0:
            self.counts["unstamped"] += 1
            return False
        self.counts["received"] += 1
        self.cues.add(stamp_ns, msg)
        return True

    def add_imu(self, stamp_ns: int, orientation_xyzw: tuple[float, ...] | None) -> bool:
        """One IMU attitude; False for one ignored and counted: no orientation (None), or
        stamped 0 (as `add_cue`)."""
        if orientation_xyzw is None:
            self.imu_counts["no_orientation"] += 1
            return False
        if stamp_ns == 0:
            self.imu_counts["unstamped"] += 1
            return False
        self.imu_counts["received"] += 1
        self.imus.add(stamp_ns, orientation_xyzw)
        return True

    def _frame_up(self, stamp_ns: int, cfg: dict[str, Any]) -> tuple[np.ndarray | None, str]:
        """This frame's up from the IMU nearest in stamp, or None (the mount prior) and why."""
        if stamp_ns == 0:  # no lookup: the IMU messages kept are all stamped, none pairs with it
            self.imu_counts["image_unstamped"] += 1
            return None, f"prior ({UNSTAMPED_IMAGE.format(what='imu')})"
        tol_s = cfg["ground_plane.imu_max_stamp_diff_s"]
        q = self.imus.nearest(stamp_ns, int(tol_s * 1e9))
        mount = (cfg["ground_plane.pitch_deg"], cfg["ground_plane.roll_deg"])
        up_3, source = frame_up(q, *mount, tol_s)
        if up_3 is None and q is None and self.imus.dropped_near(stamp_ns, int(tol_s * 1e9)):
            self.imu_counts["dropped_late"] += 1
            return None, f"prior ({_dropped('imu', self.imus)})"
        if up_3 is None:
            self.imu_counts["missing" if q is None else "bad_orientation"] += 1
        return up_3, source

    def to_metres(
        self,
        relative: np.ndarray,
        stamp_ns: int,
        cfg: dict[str, Any],
        projection: Any | None,
        image: np.ndarray | None = None,
        cue_deadline: float = 0.0,
    ) -> tuple[np.ndarray, str | None]:
        """(depth, fallback reason): metres from the first source that gives a usable scale,
        else `relative` unchanged and the reasons. `projection`: the frame's P (12 values, at
        the depth's size) or None without a calibration; `image`: the frame (HxWx3, the depth's
        size) for `ground_plane.vertical_lines`; `cue_deadline`: until when (time.monotonic())
        to wait for a sparse cue of this stamp that has not come yet."""
        reasons = []
        if self.sparse_on:
            fit, reason = self._sparse_fit(relative, stamp_ns, cfg, cue_deadline)
            if fit is not None:
                if self.ground is not None:  # the floor's memory would be stale on its return
                    self.ground.forget()
                return self._applied("sparse_depth", fit.scale, fit.shift, fit.mode, relative)
            reasons.append(f"sparse_depth: {reason}")
        if self.ground is not None:
            scale, fit, reason = self._ground_scale(relative, projection, stamp_ns, cfg, image)
            if scale is not None:
                metres = apply_floor_scale(relative, projection, scale, fit)
                mode = "scale" if fit.tilt_share == 0.0 else "scale_tilt"
                return self._applied("ground_plane", scale, 0.0, mode, relative, metres)
            reasons.append(f"ground_plane: {reason}")
        why = "; ".join(reasons)
        s = self.state
        s |= {"units": "relative", "source": "none", "scale": "none", "shift": "none"}
        s |= {"mode": "none", "reason": why, "fallbacks": s["fallbacks"] + 1, "nonpositive_px": 0}
        return relative, why

    def _applied(
        self,
        source: str,
        scale: float,
        shift: float,
        mode: str,
        relative: np.ndarray,
        metres: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Record what is applied; `metres` when the source computed them itself, else
        scale * relative + shift."""
        s = self.state
        s |= {"units": "metres", "source": source, "scale": scale, "shift": shift, "mode": mode}
        s |= {"reason": "ok", "fits": s["fits"] + 1}
        if metres is None:
            metres = ScaleFit(scale, shift, mode, 0, 0, float("nan")).apply(relative)
        # pixels the fit put at or behind the camera, published -inf ("too close")
        s["nonpositive_px"] = int(np.isneginf(metres).sum())
        return metres, None

    def _sparse_fit(
        self, relative: np.ndarray, stamp_ns: int, cfg: dict[str, Any], deadline: float = 0.0
    ):
        if stamp_ns == 0:  # no wait: it would read as a new stream's and wait until the deadline
            self.counts["image_unstamped"] += 1
            return None, UNSTAMPED_IMAGE.format(what="sparse_depth")
        tol_s = cfg["sparse_depth.max_stamp_diff_s"]
        msg = self.cues.wait_nearest(stamp_ns, int(tol_s * 1e9), deadline)
        if msg is None and self.cues.dropped_near(stamp_ns, int(tol_s * 1e9)):
            self.counts["dropped_late"] += 1
            return None, _dropped("sparse_depth", self.cues)
        if msg is None:
            return None, f"no sparse_depth within {tol_s} s"
        try:  # a compressedDepth cue is decoded here, once, for the frame that uses it
            hi = cfg["sparse_depth.max_m"] or float("inf")  # 0: no upper bound, as max_depth
            metric = depth_to_metres(msg, cfg["sparse_depth.min_m"], hi)
        except ros_image.ImageDecodeError as exc:
            self.counts[f"rejected.{exc.cause}"] += 1
            return None, f"sparse_depth not decodable: {exc}"
        if metric.shape != relative.shape:
            (mh, mw), (rh, rw) = metric.shape, relative.shape
            if abs((mw / mh) / (rw / rh) - 1.0) > 0.01:  # stretched onto the image: a biased fit
                self.counts["rejected.aspect"] += 1
                return None, (
                    f"sparse_depth is {mw}x{mh}, the image {rw}x{rh}: another aspect ratio, so "
                    "not registered to the image (register the cue to the camera first)"
                )
            metric = resample_sparse(metric, relative.shape)
        return fit_metric_scale(
            relative, metric, cfg["sparse_depth.mode"], int(cfg["sparse_depth.min_points"])
        )

    def _lines_up(
        self, image: np.ndarray | None, shape: tuple[int, ...], projection: Any, cfg: dict[str, Any]
    ) -> tuple[np.ndarray | None, str]:
        """This frame's up from its vertical lines (or the horizon), or None (the mount prior)
        and why."""
        prior_3 = expected_up(cfg["ground_plane.pitch_deg"], cfg["ground_plane.roll_deg"])
        up_3, source, code = frame_lines_up(image, shape, projection, prior_3)
        self.lines_counts[code] += 1
        return up_3, source

    def _ground_scale(
        self,
        relative: np.ndarray,
        projection: Any | None,
        stamp_ns: int,
        cfg: dict[str, Any],
        image: np.ndarray | None = None,
    ) -> tuple[float | None, GroundFit | None, str]:
        if projection is None:
            self.plane = {"fit": "no_camera_info"}
            return None, None, "no camera_info for this frame (the floor needs the intrinsics)"
        last, self._ground_stamp_ns = self._ground_stamp_ns, stamp_ns
        if last is not None:
            step = stamp_ns - last
            usual = float(np.median(self._ground_steps_ns)) if self._ground_steps_ns else 0.0
            if -step > FLOOR_GAP_S * 1e9 or step > max(
                FLOOR_GAP_S * 1e9, FLOOR_GAP_INTERVALS * usual
            ):
                self.ground.forget()  # a gap either way (a loop, a seek, a paused camera): a cut
            if step > 0:  # the median of the last few: one pause does not make the node slow
                self._ground_steps_ns.append(step)
        up_3, up_source = self._frame_up(stamp_ns, cfg) if self.imu_on else (None, "prior")
        estimated = False
        if up_3 is None and self.lines_on:  # an IMU in time wins: it measures this very instant
            up_3, up_source = self._lines_up(image, relative.shape, projection, cfg)
            estimated = up_3 is not None
        fit, applied = self.ground.update(relative, projection, None, up_3, estimated)
        if fit.up_dropped:  # the floor disagreed with the lines' up: fitted along the prior
            self.lines_counts["floor_disagrees"] += 1
            up_source = f"prior ({fit.up_dropped})"
        self.plane = {
            "up": up_source,
            "fit": fit.code,
            "inlier_fraction": f"{fit.inlier_fraction:.3f}",
            "normal_angle_deg": f"{fit.normal_angle_deg:.1f}",
            "residual": f"{fit.residual:.4f}",
            "raw_scale": "none" if fit.scale is None else f"{fit.scale:.4g}",
            "tilt_share": f"{fit.tilt_share:.2f}",
            "smoothing": f"{applied.status}: {applied.detail}",
        }
        if applied.scale is None:
            return None, fit, fit.reason
        return applied.scale, fit, "ok"

    def diagnostics(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.sparse_on:
            values |= {f"sparse_{k}": v for k, v in sorted(self.counts.items())}
        if self.imu_on:
            values |= {f"imu_{k}": v for k, v in sorted(self.imu_counts.items())}
        if self.lines_on:
            values |= {f"vertical_lines_{k}": v for k, v in sorted(self.lines_counts.items())}
        values |= {f"metric_{k}": v for k, v in self.state.items() if k != "units"}
        if self.ground_on:
            values |= {f"ground_plane_{k}": v for k, v in self.plane.items()}
        return values
