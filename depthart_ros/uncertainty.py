"""The per-pixel uncertainty outputs of `depthart_node` (issue #25), free of rclpy.

A checkpoint with the learned uncertainty head (`depthart_core.uncertainty_head`) gives, with each
depth map, every pixel's expected absolute relative error: |s d - g| / g after a median scale, so
0.1 = "this pixel is off by about 10 %". It is a ratio, so it holds as it is for metric depth
scaled by one factor (the floor's, or `sparse_depth.mode: scale`: the factor is absorbed by s); a
`scale_shift` fit's shift also absorbs part of the error. The node publishes

- `depth/uncertainty` (32FC1, the depth's header): that error, NaN where the head gave no finite
  value (never 0, which would read as "certain");
- `depth/filtered` (32FC1, the depth's header): the published `depth`, same values and units,
  with NaN where the uncertainty is above `uncertainty.max` or not finite.

Both are lazy: the uncertainty pass runs only for a frame that, when it starts, has a subscriber on
either topic; otherwise the node runs the plain depth pass. A backend without the head
(`Backend.has_uncertainty` false, as with checkpoints from before the head) has neither topic:
the node says so once in its log and in diagnostics.

Here: the per-frame check of one uncertainty map (`examine`), the filter, publishing and the
counters the node reports; the node creates the publishers (anything with `publish` and
`get_subscription_count`) and turns arrays into messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

UNAVAILABLE = "unavailable, checkpoint has no head"
TOPICS = ("depth/uncertainty", "depth/filtered")


@dataclass(frozen=True)
class UncertaintyFrame:
    """One frame's uncertainty after the checks."""

    uncertainty: np.ndarray  # (H, W) float32, NaN where the head gave no finite value
    keep: np.ndarray  # (H, W) bool: finite and <= uncertainty.max
    non_finite: int  # pixels whose uncertainty was NaN or +-inf

    @property
    def dropped_fraction(self) -> float:
        return 1.0 - np.count_nonzero(self.keep) / max(self.keep.size, 1)

    def filter(self, depth: np.ndarray) -> np.ndarray:
        """`depth` (the published one, any units) with NaN where the pixel is not kept."""
        if depth.shape != self.keep.shape:
            raise ValueError(f"depth {depth.shape} and uncertainty {self.keep.shape} differ")
        return np.where(self.keep, depth, np.float32(np.nan)).astype(np.float32, copy=False)


def examine(uncertainty: np.ndarray, max_error: float) -> UncertaintyFrame:
    """Check an (H, W) uncertainty map against `max_error` (`uncertainty.max`, finite >= 0).
    Non-finite values become NaN and are never kept: -inf would otherwise pass `u <= max`."""
    u = np.asarray(uncertainty, dtype=np.float32)
    finite = np.isfinite(u)
    non_finite = u.size - int(np.count_nonzero(finite))
    if non_finite:
        u = np.where(finite, u, np.float32(np.nan))
    with np.errstate(invalid="ignore"):
        keep = finite & (u <= np.float32(max_error))
    return UncertaintyFrame(u, keep, non_finite)


class UncertaintyOutputs:
    """The node's uncertainty publishers (`TOPICS`; none without a head), whether a frame needs
    the uncertainty pass, publishing one frame's outputs, and the counters for diagnostics."""

    def __init__(self, publishers: Sequence[Any] = (), unavailable: str = UNAVAILABLE) -> None:
        if len(publishers) not in (0, len(TOPICS)):
            raise ValueError(f"need a publisher for each of {TOPICS} or none, got {publishers}")
        self.publishers = tuple(publishers)
        self.available = bool(publishers)
        self.unavailable = unavailable  # what diagnostics say without publishers
        self.frames = 0  # frames that ran the uncertainty pass
        self.non_finite_pixels = 0  # over all of them
        self.last: dict[str, Any] = {"non_finite": 0, "dropped_fraction": "none"}

    def subscribed(self) -> bool:
        """Whether anyone listens to depth/uncertainty or depth/filtered now."""
        pubs = self.publishers or ()
        return any(p.get_subscription_count() > 0 for p in pubs)

    def examine(self, uncertainty: np.ndarray, max_error: float) -> UncertaintyFrame:
        """`examine` one frame and count it."""
        frame = examine(uncertainty, max_error)
        self.frames += 1
        self.non_finite_pixels += frame.non_finite
        self.last = {"non_finite": frame.non_finite, "dropped_fraction": frame.dropped_fraction}
        return frame

    def publish(
        self,
        uncertainty: np.ndarray,
        depth: np.ndarray,
        max_error: float,
        to_msg: Callable[[np.ndarray], Any],
        warn: Callable[[str, str], None],
    ) -> UncertaintyFrame:
        """`examine` one frame and publish, on each topic that has a subscriber, `to_msg` of its
        map: the uncertainty, and `depth` (as published) filtered by it. Non-finite pixels are
        reported through `warn(cause, text)` (the node's throttled log)."""
        frame = self.examine(uncertainty, max_error)
        if frame.non_finite:
            warn(
                "uncertainty.non_finite",
                f"{frame.non_finite} uncertainty pixels are NaN or infinite: NaN in "
                f"{' and '.join(TOPICS)}",
            )
        pub_u, pub_f = self.publishers
        if pub_u.get_subscription_count() > 0:
            pub_u.publish(to_msg(frame.uncertainty))
        if pub_f.get_subscription_count() > 0:
            pub_f.publish(to_msg(frame.filter(depth)))
        return frame

    def state(self) -> str:
        if not self.available:
            return self.unavailable
        return "on" if self.subscribed() else "off (no subscriber)"

    def diagnostics(self, max_error: float) -> dict[str, Any]:
        values: dict[str, Any] = {"uncertainty": self.state()}
        if self.available:
            # the last frame's figures while someone listens; stale once they all left
            dropped = self.last["dropped_fraction"] if self.subscribed() else "none"
            values |= {
                "uncertainty_max": max_error,
                "uncertainty_frames": self.frames,
                "uncertainty_non_finite_pixels": self.non_finite_pixels,
                "uncertainty_dropped_fraction": dropped
                if isinstance(dropped, str)
                else f"{dropped:.4f}",
            }
        return values

    def problems(self) -> list[str]:
        """Warnings for diagnostics: the last frame's uncertainty had non-finite pixels (while
        someone still listens: with no subscriber no frame computes it, and the last is stale)."""
        n = self.last["non_finite"] if self.available and self.subscribed() else 0
        return [f"{n} non-finite uncertainty pixels in the last frame"] if n else []
