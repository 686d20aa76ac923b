"""Metres for `depthart_node`: the relative depth scaled by a metric source, or left relative with
the reason. Free of rclpy; the node feeds it messages and publishes what it returns.

Source `sparse_depth`: each frame is fitted to the sparse metric cue nearest in stamp
(`depthart_core.metric_scale`). Whatever happens, `state` describes the frame just published:
its units, the scale and shift actually applied (none while relative, never a stale fit) and why
it fell back.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from depthart_core.metric_scale import StampMatcher, fit_metric_scale, resample_sparse
from depthart_core.rosio import image as ros_image


class SparseMetric:
    """The sparse-depth metric source: cue buffer, per-frame fit and its diagnostics."""

    def __init__(self) -> None:
        self.cues = StampMatcher(maxlen=10)
        self.counts: Counter[str] = Counter()
        self.state: dict[str, Any] = {
            "units": "relative",
            "scale": "none",
            "shift": "none",
            "mode": "none",
            "fits": 0,
            "fallbacks": 0,
            "reason": "no sparse_depth received yet",
        }

    def add_cue(self, stamp_ns: int, msg: Any) -> None:
        self.counts["received"] += 1
        self.cues.add(stamp_ns, msg)

    def to_metres(
        self, relative: np.ndarray, stamp_ns: int, cfg: dict[str, Any]
    ) -> tuple[np.ndarray, str | None]:
        """(depth, fallback reason): metres when the cue nearest in stamp gives a usable fit,
        else `relative` unchanged and the reason."""
        tol_s = cfg["sparse_depth.max_stamp_diff_s"]
        msg = self.cues.nearest(stamp_ns, int(tol_s * 1e9))
        if msg is None:
            fit, reason = None, f"no sparse_depth within {tol_s} s"
        else:
            metric = ros_image.depth_image_to_metres(
                msg, cfg["sparse_depth.min_m"], cfg["sparse_depth.max_m"]
            )
            if metric.shape != relative.shape:
                metric = resample_sparse(metric, relative.shape)
            fit, reason = fit_metric_scale(
                relative, metric, cfg["sparse_depth.mode"], int(cfg["sparse_depth.min_points"])
            )
        s = self.state
        s["reason"] = reason
        if fit is None:
            s |= {"units": "relative", "scale": "none", "shift": "none", "mode": "none"}
            s["fallbacks"] += 1
            return relative, reason
        s |= {"units": "metres", "scale": fit.scale, "shift": fit.shift, "mode": fit.mode}
        s["fits"] += 1
        return fit.apply(relative), None

    def diagnostics(self) -> dict[str, Any]:
        values = {f"sparse_{k}": v for k, v in sorted(self.counts.items())}
        return values | {f"metric_{k}": v for k, v in self.state.items() if k != "units"}
