"""The frame path of `depthart_node` between subscription and publishers, free of rclpy.

Latest-frame policy: the subscription callback only validates the header and parks the message in
a one-frame slot; a worker thread converts, runs `Backend.predict` and publishes. A frame that
arrives while another waits replaces it and is counted, so memory stays flat and latency bounded
when the camera outruns the model. Every frame ends in exactly one counter:
    received = processed + replaced + rejected + dropped_stale + dropped_inactive + pending
               + in_progress
(`dropped_inactive`: frames waiting when the managed node was deactivated).

Here: the slot and its counters (`FramePipeline`), the worker loop (`run_worker`), inference
timing, the CameraInfo check (`camera_info_problem`, kept in `depthart_core.rosio.camera_info`,
which the replay shares) and the frame statistics that `depthart_ros.node` publishes on
`/diagnostics`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from depthart_core.rosio.camera_info import camera_info_problem as camera_info_problem
from depthart_core.runtime.base import Backend

LATENCY_PLAUSIBLE_MS = 3_600_000.0  # an hour: a real frame's latency, or a clock skew, is less


RETRY = object()  # `FramePipeline.take` after a `wake`: re-read the rate, then take again


class FramePipeline:
    """The one-frame slot between the subscription and the worker, and every frame counter,
    under one lock so a snapshot always satisfies the accounting identity."""

    def __init__(self, window: int = 300) -> None:
        self._cv = threading.Condition()
        self._pending: Any = None
        self._closed = False
        self._wakes = 0
        self.counts: Counter[str] = Counter()
        self.rejected_by: Counter[str] = Counter()
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.inference_ms: deque[float] = deque(maxlen=window)
        self.last_received: float | None = None  # time.monotonic() of the newest image

    def offer(self, item: Any) -> None:
        with self._cv:
            self.counts["received"] += 1
            self.last_received = time.monotonic()
            if self._pending is not None:
                self.counts["replaced"] += 1
            self._pending = item
            self.counts["pending_max"] = max(self.counts["pending_max"], 1)
            self._cv.notify()

    def reject_incoming(self, cause: str) -> None:
        with self._cv:
            self.counts["received"] += 1
            self.last_received = time.monotonic()
            self._reject(cause)

    def _reject(self, cause: str) -> None:
        self.counts["rejected"] += 1
        self.rejected_by[cause] += 1

    def wake_token(self) -> int:
        """The count of `wake` calls so far: given to `take` or `pause`, a wake after it (a rate
        set while the worker was reading the old one) is not missed."""
        with self._cv:
            return self._wakes

    def take(self, token: int | None = None) -> Any | None:
        """Block until a frame waits (returns it, now in progress), the pipeline closes (None),
        or `wake` is called (`RETRY`: a rate changed, so the worker re-reads it before taking
        the frame; a lower cap applies to the very next frame); since `token` when given."""
        with self._cv:
            wakes = self._wakes if token is None else token
            while self._pending is None and not self._closed and self._wakes == wakes:
                self._cv.wait()
            if self._closed:
                return None
            if self._wakes != wakes:
                return RETRY
            item, self._pending = self._pending, None
            self.counts["in_progress"] = 1
            return item

    def finish(self, outcome: str, cause: str = "") -> None:
        """outcome: processed | rejected (with cause) | dropped_stale."""
        with self._cv:
            self.counts["in_progress"] = 0
            if outcome == "rejected":
                self._reject(cause)
            else:
                self.counts[outcome] += 1
            self._cv.notify_all()

    def drop_pending(self) -> int:
        """Discard the waiting frame, if any, as `dropped_inactive`; returns how many (0 or 1)."""
        with self._cv:
            dropped = int(self._pending is not None)
            self._pending = None
            self.counts["dropped_inactive"] += dropped
            return dropped

    def wait_idle(self, timeout: float) -> bool:
        """Block until no frame is in progress; False if one still is after `timeout` s."""
        with self._cv:
            return self._cv.wait_for(lambda: not self.counts["in_progress"], timeout=timeout)

    def record(self, latency_ms: float, inference_ms: float) -> None:
        """One processed frame's stamp-to-publish latency and inference time. A latency no clock
        could give (a stamp of 0 or from another clock: beyond LATENCY_PLAUSIBLE_MS either way)
        is counted as `latency_implausible`, not kept, so one such frame cannot hold the
        percentiles at decades for the next `window` frames."""
        with self._cv:
            if abs(latency_ms) <= LATENCY_PLAUSIBLE_MS:
                self.latency_ms.append(latency_ms)
            else:
                self.counts["latency_implausible"] += 1
            self.inference_ms.append(inference_ms)

    def pause(self, seconds: float, token: int | None = None) -> bool:
        """Sleep up to `seconds`, returning early when the pipeline closes or `wake` is called
        (since `token` when given); True if it slept the whole time."""
        with self._cv:
            wakes = self._wakes if token is None else token
            return not self._cv.wait_for(
                lambda: self._closed or self._wakes != wakes, timeout=max(0.0, seconds)
            )

    def wake(self) -> None:
        """End a `pause` or a `take` now (a rate parameter changed: the worker re-reads it)."""
        with self._cv:
            self._wakes += 1
            self._cv.notify_all()

    @property
    def closed(self) -> bool:
        with self._cv:
            return self._closed

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self._cv:
            snap = {k: self.counts[k] for k in ("received", "processed", "replaced", "rejected")}
            snap |= {k: self.counts[k] for k in ("dropped_stale", "dropped_inactive")}
            snap |= {k: self.counts[k] for k in ("in_progress", "pending_max")}
            snap["latency_implausible"] = self.counts["latency_implausible"]
            snap["last_received"] = self.last_received
            snap["pending"] = int(self._pending is not None)
            snap["rejected_by"] = dict(self.rejected_by)
            snap["latency_ms"] = list(self.latency_ms)
            snap["inference_ms"] = list(self.inference_ms)
            return snap


def frame_latency_ms(now_ns: int, stamp_ns: int) -> float:
    """Stamp-to-publish latency; inf (counted as implausible) for a stamp of 0, a driver that
    never stamps, whatever the clock: under sim time "now" can be minutes, a plausible latency."""
    return float("inf") if stamp_ns == 0 else (now_ns - stamp_ns) / 1e6


def run_worker(
    frames: FramePipeline,
    process: Callable[[Any], tuple[str, str]],
    max_rate_hz: Callable[[], float],
    keep_going: Callable[[Exception], bool],
) -> None:
    """The worker thread's loop: wait for a frame (no sooner than `max_rate_hz()` allows), process
    it and count its `(outcome, cause)`. A frame whose `process` raises is counted as rejected
    with cause `inference_error` unless `keep_going(exc)` says to stop; returns when `frames`
    closes."""
    last_start = 0.0
    while True:
        token = frames.wake_token()  # before the rate is read: a change after it still wakes
        rate = max_rate_hz()
        wait_s = last_start + 1.0 / rate - time.monotonic() if rate > 0 else 0.0
        if wait_s > 0:
            frames.pause(wait_s, token)  # early on close, or on wake: a new rate applies at once
            if frames.closed:
                return
            continue
        item = frames.take(token)
        if item is None:
            return
        if item is RETRY:
            continue
        started = time.monotonic()
        try:
            outcome, cause = process(item)
        except Exception as exc:  # a bad frame must never kill the worker
            if not keep_going(exc):  # stopping (the context shut down): the frame still ends,
                frames.finish("rejected", "inference_error")  # so a drain does not wait on it
                return
            outcome, cause = "rejected", "inference_error"
        # only a frame that reached the model uses up a max_rate_hz period: a stale one or one
        # that did not decode must not make the fresh frame behind it wait (or go stale too)
        if outcome == "processed" or cause == "inference_error":
            last_start = started
        frames.finish(outcome, cause)


def timed_predict(
    backend: Backend,
    rgb: np.ndarray,
    min_inference_ms: float = 0.0,
    with_uncertainty: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(depth, uncertainty or None, wall time in ms) of `backend.predict(rgb, with_uncertainty)`,
    padded to `min_inference_ms` (a test hook that stands in for a slow model)."""
    t0 = time.monotonic()
    out = backend.predict(rgb, with_uncertainty=with_uncertainty)
    depth, uncertainty = out if with_uncertainty else (out, None)
    pad = min_inference_ms / 1e3 - (time.monotonic() - t0)
    if pad > 0:
        time.sleep(pad)
    return depth, uncertainty, (time.monotonic() - t0) * 1e3


def header_stamp_ns(header: Any) -> int:
    """A std_msgs/Header stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc), NaN where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    except OSError:
        return float("nan")


def frame_stats(snap: dict[str, Any], prev: tuple[float, int, int], now: float) -> dict[str, Any]:
    """The frame part of the diagnostics, in publishing order: input and output rates since
    `prev` = (monotonic time, received, processed), latency and inference percentiles over the
    snapshot's window, every counter and the rejections by cause."""
    t_prev, rx_prev, out_prev = prev
    dt = max(now - t_prev, 1e-3)
    last = snap["last_received"]
    lat, inf = snap["latency_ms"], snap["inference_ms"]
    return {
        "input_rate_hz": f"{(snap['received'] - rx_prev) / dt:.2f}",
        "output_rate_hz": f"{(snap['processed'] - out_prev) / dt:.2f}",
        "latency_p50_ms": f"{np.percentile(lat, 50):.1f}" if lat else "nan",
        "latency_p95_ms": f"{np.percentile(lat, 95):.1f}" if lat else "nan",
        "inference_p50_ms": f"{np.percentile(inf, 50):.1f}" if inf else "nan",
        "latency_implausible": snap["latency_implausible"],
        **{f"frames_{k}": snap[k] for k in ("received", "processed", "replaced", "rejected")},
        **{f"frames_{k}": snap[k] for k in ("dropped_stale", "dropped_inactive")},
        **{f"frames_{k}": snap[k] for k in ("pending", "in_progress")},
        "pending_max": snap["pending_max"],
        **{f"rejected.{k}": v for k, v in sorted(snap["rejected_by"].items())},
        "last_image_age_s": "none" if last is None else f"{now - last:.1f}",
    }


def input_silence(last_received: float | None, watched_since: float, now: float,
                  timeout_s: float, topic: str) -> str | None:  # fmt: skip
    """Why the diagnostics should warn that no image comes (a camera stopped, a remap or QoS
    that matches no publisher), or None: no image on `topic` for `timeout_s` (0 = off), counted
    from the newest image, or, before the first, from when the node started listening."""
    if timeout_s <= 0:
        return None
    since = watched_since if last_received is None else max(last_received, watched_since)
    silent = now - since
    if silent < timeout_s:
        return None
    if last_received is None or last_received < watched_since:
        return f"no image on {topic} in the {silent:.0f} s since the node started listening"
    return f"no image on {topic} for {silent:.0f} s"
